import { openSliceRecord } from '../files/verify.js'
import { planResponse } from '../sync/responder.js'
import { AEAD_NONCE_BYTES, HASH_BYTES } from '../crypto/index.js'
import { toHex } from '../bytes.js'
import {
  EVENT_BYTES, EventType, WireError, SLICE_PLAINTEXT_BYTES, SLICE_RECORD_BYTES,
  WINDOW_HASHES_PER_EVENT, encodeSliceEventInto, openSignedEvent, decodeSyncFileRequestPayload, encodeSyncFileReplyPayload,
  decodeWindowHashesRequest, encodeWindowHashes
} from '../wire/index.js'
import type { NodeContext } from './context.js'
import type { LocalFile } from './local-file.js'

/** Window hashes one request is answered with at most (273 events). */
export const MAX_WINDOW_HASHES_PER_REQUEST = 4096

/**
 * Answers focused-sync requests (`sync-file`): the requested range's slices this node holds
 * and the requester lacks, up to its limit, each authenticated again on the way out.
 */
export class Serving {
  private readonly plaintextScratch = new Uint8Array(SLICE_PLAINTEXT_BYTES)
  private readonly nonceScratch = new Uint8Array(AEAD_NONCE_BYTES)

  /** `onDamaged`: a stored slice of `local` no longer authenticates and was forgotten. */
  constructor (private readonly ctx: NodeContext, private readonly onDamaged: (local: LocalFile) => void) {}

  /** Answers a `sync-file` request. */
  onRequest (peer: string, bytes: Uint8Array): void {
    const { ctx } = this
    const event = openSignedEvent(bytes, EventType.syncFile)
    if (toHex(event.header.signerPk) !== peer) throw new WireError('field', 'request signed by another peer')
    const request = decodeSyncFileRequestPayload(event.payload)
    const local = ctx.files.locals.get(toHex(request.fileId)) ?? ctx.files.localById(request.fileId)
    // Only slices of verified windows are served: nothing unchecked is passed on.
    const plan = planResponse(request, local?.servable ?? null, local?.descriptor.slices ?? 0)
    const events: Uint8Array[] = []
    // One allocation for the whole answer; each event is a view into it.
    const eventBuffer = new Uint8Array(plan.send.length * EVENT_BYTES)
    if (local !== null && plan.send.length > 0) {
      const first = plan.send[0]!
      const records = local.readRecords(first, plan.send[plan.send.length - 1]! - first + 1)
      for (const sliceNo of plan.send) {
        const record = records.subarray((sliceNo - first) * SLICE_RECORD_BYTES, (sliceNo - first + 1) * SLICE_RECORD_BYTES)
        // Authenticated again on the way out: a damaged disk never feeds peers bad slices.
        if (!openSliceRecord(record, sliceNo, local.descriptor, this.plaintextScratch, this.nonceScratch)) {
          ctx.counters.localRecordsDamaged++
          local.forget(sliceNo)
          this.onDamaged(local)
          continue
        }
        const at = events.length * EVENT_BYTES
        events.push(encodeSliceEventInto(eventBuffer.subarray(at, at + EVENT_BYTES), local.descriptor.fileId, sliceNo, local.descriptor.noncePrefix, record))
      }
    }
    const reply = encodeSyncFileReplyPayload({ ...request, bitmap: plan.responderBitmap, sending: events.length })
    ctx.send(peer, ctx.signer.sign(EventType.syncFileReply, reply))
    for (const e of events) ctx.send(peer, e)
    ctx.counters.requestsAnswered++
    ctx.counters.slicesSent += events.length
    ctx.ledger.of(peer).answered++
  }

  /** Answers a request for window hashes: runs of 15 from the checked list, or "none" when it is not here. */
  onWindowHashesRequest (peer: string, bytes: Uint8Array): void {
    const request = decodeWindowHashesRequest(bytes)
    const hashes = this.ctx.store.getWindowHashes(request.fileId)
    if (hashes === null) {
      this.ctx.send(peer, encodeWindowHashes(request.fileId, request.firstWindow, new Uint8Array(0)))
      return
    }
    const windows = hashes.length / HASH_BYTES
    const end = Math.min(windows, request.firstWindow + Math.min(request.count, MAX_WINDOW_HASHES_PER_REQUEST))
    for (let w = request.firstWindow; w < end; w += WINDOW_HASHES_PER_EVENT) {
      const last = Math.min(end, w + WINDOW_HASHES_PER_EVENT)
      this.ctx.send(peer, encodeWindowHashes(request.fileId, w, hashes.subarray(w * HASH_BYTES, last * HASH_BYTES)))
    }
  }
}
