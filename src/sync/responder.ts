import { bitmapHas } from './bitset.js'
import type { Bitset } from './bitset.js'
import type { SyncFileRequest } from '../wire/sync-file.js'

export interface ResponsePlan {
  /** What this node has of the requested range (goes into the reply). */
  responderBitmap: Uint8Array
  /** Slices to send, ascending: held here, not held by the requester, at most `limit`. */
  send: number[]
}

/** Decides the answer to a `sync-file` request from what this node holds. Pure. */
export function planResponse (request: SyncFileRequest, have: Bitset | null, totalSlices: number): ResponsePlan {
  const send: number[] = []
  const last = Math.min(request.firstSlice + request.rangeLength, totalSlices)
  const responderBitmap = have === null || request.firstSlice >= totalSlices
    ? new Uint8Array(request.bitmap.length)
    : have.rangeBitmap(request.firstSlice, last - request.firstSlice)
  if (have === null) return { responderBitmap, send }
  for (let i = request.firstSlice; i < last && send.length < request.limit; i++) {
    if (have.has(i) && !bitmapHas(request.bitmap, i - request.firstSlice)) send.push(i)
  }
  return { responderBitmap, send }
}
