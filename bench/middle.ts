/** The item whose `key` is the median of `items` (the upper one of an even count). */
export function middle<T> (items: readonly T[], key: (item: T) => number): T {
  return [...items].sort((a, b) => key(a) - key(b))[Math.floor(items.length / 2)]!
}
