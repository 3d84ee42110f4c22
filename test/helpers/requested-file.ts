import { FileLayout } from '../../src/files/windows.js'
import { Bitset } from '../../src/sync/bitset.js'

/** A file as the requester sees it, with the slices held so far in `have`. */
export function requestedFile (key: string, slices: number) {
  const layout = new FileLayout(slices)
  const have = new Bitset(slices)
  return { key, layout, have, missing: (r: number) => layout.rangeLength(r) - have.countIn(layout.rangeStart(r), layout.rangeLength(r)) }
}
