import { openSliceRecord } from '../files/verify.js'
import { planResponse } from '../sync/responder.js'
import { Pacer } from '../sync/pacer.js'
import { readOutbound } from './outbound-records.js'
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

/** Slice events on their way to one peer, in the order asked, at the pace it asked for. */
interface Outgoing {
  /** The connection the requests came by: a restarted peer does not get its old process's slices. */
  session: unknown
  /** The pace its latest request asked for (0: none). */
  asked: number
  pacer: Pacer
  queue: Uint8Array[]
  head: number
}

/**
 * Answers focused-sync requests (`sync-file`): the requested range's slices this node holds
 * and the requester lacks, up to its limit, each authenticated again on the way out. The
 * reply goes at once (its round trip is how the requester measures the path); the slices are
 * spread at the pace the requester asked for, one queue per peer, oldest request first.
 */
export class Serving {
  private readonly plaintextScratch = new Uint8Array(SLICE_PLAINTEXT_BYTES)
  private readonly nonceScratch = new Uint8Array(AEAD_NONCE_BYTES)
  private readonly outgoing = new Map<string, Outgoing>()
  /** The most bytes of slice events per second sent to all peers together (an upload cap), or null. */
  private uploadCap: number | null = null

  /** `onDamaged`: a stored slice of `local` no longer authenticates and was forgotten. */
  constructor (private readonly ctx: NodeContext, private readonly onDamaged: (local: LocalFile) => void, private readonly catchUpMs?: number) {}

  /**
   * Answers a `sync-file` request. In three parts (this, sliceEvents, enqueue): as one
   * function, V8's optimized code for it was thrown away when done ("maps became deprecated
   * during optimization") forty-odd times a transfer, each time after some 25 ms of a
   * compiler thread, and the handler ran unoptimized all along.
   */
  onRequest (peer: string, bytes: Uint8Array): void {
    const { ctx } = this
    const event = openSignedEvent(bytes, EventType.syncFile)
    if (toHex(event.header.signerPk) !== peer) throw new WireError('field', 'request signed by another peer')
    const request = decodeSyncFileRequestPayload(event.payload)
    const local = ctx.files.locals.get(toHex(request.fileId)) ?? ctx.files.localById(request.fileId)
    // Only slices of verified windows are served: nothing unchecked is passed on.
    const plan = planResponse(request, local?.servable ?? null, local?.descriptor.slices ?? 0)
    const events = local !== null && plan.send.length > 0 ? this.sliceEvents(local, plan.send) : []
    const reply = encodeSyncFileReplyPayload({ ...request, bitmap: plan.responderBitmap, sending: events.length })
    ctx.send(peer, ctx.signer.sign(EventType.syncFileReply, reply))
    this.enqueue(peer, request.pace, events)
    ctx.counters.requestsAnswered++
    ctx.counters.slicesSent += events.length
    ctx.ledger.of(peer).answered++
  }

  /** The slice events for `send`, each authenticated again on the way out: a damaged disk never feeds peers bad slices. */
  private sliceEvents (local: LocalFile, send: readonly number[]): Uint8Array[] {
    const events: Uint8Array[] = []
    // One allocation for the whole answer; each event is a view into it.
    const eventBuffer = new Uint8Array(send.length * EVENT_BYTES)
    const { records, first, intact } = readOutbound(local, send)
    for (const sliceNo of send) {
      const record = records.subarray((sliceNo - first) * SLICE_RECORD_BYTES, (sliceNo - first + 1) * SLICE_RECORD_BYTES)
      if (!intact.has(local.layout.windowOf(sliceNo)) && !openSliceRecord(record, sliceNo, local.descriptor, this.plaintextScratch, this.nonceScratch)) {
        this.ctx.counters.localRecordsDamaged++
        local.forget(sliceNo)
        this.onDamaged(local)
        continue
      }
      const at = events.length * EVENT_BYTES
      events.push(encodeSliceEventInto(eventBuffer.subarray(at, at + EVENT_BYTES), local.descriptor.fileId, sliceNo, local.descriptor.noncePrefix, record))
    }
    return events
  }

  /** Queues `events` for `peer`, to go at `pace` (the latest its requests asked for), and sends what is due now. */
  private enqueue (peer: string, pace: number, events: readonly Uint8Array[]): void {
    const session = this.ctx.session(peer)
    let out = this.outgoing.get(peer)
    if (out !== undefined && out.session !== session) {
      this.dropOutgoing(peer, out)
      out = undefined
    }
    if (out === undefined) this.outgoing.set(peer, out = { session, asked: 0, pacer: new Pacer(0, this.catchUpMs), queue: [], head: 0 })
    out.asked = pace
    for (const e of events) out.queue.push(e)
    this.sharePaces()
    this.sendDue(peer, out, this.ctx.now())
  }

  /**
   * Sends the slices each peer's pace allows by now. Returns when the next one is due, or
   * null when none waits. Slices for a peer no longer connected are dropped.
   */
  pace (tMs: number): number | null {
    let next: number | null = null
    if (this.uploadCap !== null) this.sharePaces()
    const connected = this.outgoing.size > 0 ? new Set(this.ctx.peers()) : null
    for (const [peer, out] of this.outgoing) {
      if (connected?.has(peer) !== true || this.ctx.session(peer) !== out.session) {
        this.dropOutgoing(peer, out)
        continue
      }
      this.sendDue(peer, out, tMs)
      if (out.head < out.queue.length) {
        const at = out.pacer.nextAtMs(tMs, this.ctx.eventsPerDatagram() * EVENT_BYTES)
        if (next === null || at < next) next = at
      }
    }
    return next
  }

  /** Caps what is sent to all peers together, bytes of slice events per second; null lifts it. */
  setUploadCap (bytesPerS: number | null): void {
    this.uploadCap = bytesPerS
    this.sharePaces()
  }

  /** Each peer's pace: what it asked for, within its share of the upload cap (shared by those with slices waiting). */
  private sharePaces (): void {
    let waiting = 0
    for (const out of this.outgoing.values()) if (out.head < out.queue.length) waiting++
    const share = this.uploadCap === null ? null : this.uploadCap / Math.max(1, waiting)
    for (const out of this.outgoing.values()) {
      out.pacer.setRate(share === null ? out.asked : out.asked === 0 ? share : Math.min(out.asked, share))
    }
  }

  private dropOutgoing (peer: string, out: Outgoing): void {
    this.ctx.counters.slicesUnsent += out.queue.length - out.head
    this.outgoing.delete(peer)
    this.sharePaces()
  }

  /**
   * Sends a datagram's worth of events at a time, a full datagram each: a part left over
   * would go alone, in a datagram of its own.
   */
  private sendDue (peer: string, out: Outgoing, tMs: number): void {
    const waiting = out.queue.length - out.head
    const perDatagram = this.ctx.eventsPerDatagram()
    const datagrams = out.pacer.take(tMs, perDatagram * EVENT_BYTES, Math.ceil(waiting / perDatagram))
    const n = Math.min(waiting, datagrams * perDatagram)
    for (let i = 0; i < n; i++) this.ctx.send(peer, out.queue[out.head++]!)
    if (out.head === out.queue.length) {
      out.queue.length = 0
      out.head = 0
    } else if (out.head >= 4096) {
      out.queue.splice(0, out.head)
      out.head = 0
    }
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
