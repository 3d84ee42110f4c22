/** Slices delivered over a stretch of time: the rounds whose delivery rates a rate control samples. */
export interface Span { delivered: number, ms: number }

/** Slices per second delivered over `spans`. */
export function spanRate (spans: readonly Span[]): number {
  let delivered = 0
  for (const span of spans) delivered += span.delivered
  return (delivered * 1000) / spanMs(spans)
}

/** How long `spans` last together, ms. */
export function spanMs (spans: readonly Span[]): number {
  let ms = 0
  for (const span of spans) ms += span.ms
  return ms
}
