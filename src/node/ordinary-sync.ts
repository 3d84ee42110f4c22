import { bloomBuild, bloomHas, bloomSalt, windowBitsFor } from '../sync/bloom.js'
import { randomBytes } from '../crypto/index.js'
import { toHex } from '../bytes.js'
import { EventType, WireError, SYNC_NONCE_BYTES, encodeSyncPayload, decodeSyncPayload, openSignedEvent } from '../wire/index.js'
import type { NodeContext } from './context.js'

/** How often each peer is asked for one window of ordinary sync. */
export const SYNC_INTERVAL_MS = 1000
/**
 * How soon a peer is asked for the next window when the last answer brought events this node
 * did not have: a member who joins late catches up at several windows a second, and the
 * pace falls back to SYNC_INTERVAL_MS once the windows come back empty.
 */
export const SYNC_FOLLOW_UP_MS = 100
/** Events one ordinary sync answer carries at most. */
export const SYNC_LIMIT = 64

/** Where ordinary sync stands with one peer. */
interface SyncWalk {
  lastAtMs: number
  /** Advances through a permutation of the windows. */
  step: number
  /** Shared events new to this node that came from the peer since it was last asked. */
  newEvents: number
  /** Answers in a row that brought nothing new. */
  quietAnswers: number
  /** Fewer quiet answers in a row than there are windows: this node may be catching up. */
  passUnfinished: boolean
  /** The first sync key of the window last asked for. */
  windowStart: number
}

/**
 * Ordinary sync of shared events (descriptors, members, addresses, messages): each peer is
 * asked for one window of the event space at a time with a Bloom filter of what this node
 * holds there, and questions from peers are answered with what their filter lacks.
 */
export class OrdinarySync {
  /** Per peer: when it was last asked, and how far the walk over its windows got. */
  private readonly walks = new Map<string, SyncWalk>()

  constructor (private readonly ctx: NodeContext) {}

  /** A shared event new to this node came from `peer`. */
  noteNewEvent (peer: string): void {
    const walk = this.walks.get(peer)
    if (walk !== undefined) walk.newEvents++
  }

  /** Answers a sync request: the window's shared events the requester's filter does not hold. */
  onSync (peer: string, bytes: Uint8Array): void {
    const event = openSignedEvent(bytes, EventType.sync)
    if (toHex(event.header.signerPk) !== peer) throw new WireError('field', 'sync request signed by another peer')
    const request = decodeSyncPayload(event.payload)
    const salt = bloomSalt(event.header.signerPk, request.windowBits, request.window, request.nonce)
    const span = 2 ** (32 - request.windowBits)
    let sent = 0
    for (const { eventId, body } of this.ctx.store.sharedEventsInRange(request.window * span, (request.window + 1) * span - 1)) {
      if (sent >= Math.min(request.limit, SYNC_LIMIT)) break
      if (bloomHas(request.bloom, salt, eventId)) continue
      this.ctx.send(peer, body)
      sent++
    }
    this.ctx.counters.syncEventsSent += sent
  }

  /**
   * Asks each peer, once per interval, for one window (in a scattered order) of shared
   * events; sooner while its answers bring new events, and the same part of the key space
   * again while they come near the answer's limit (that window holds more).
   */
  tick (): void {
    const { ctx } = this
    const now = ctx.now()
    const due = ctx.peers().filter(peer => {
      const walk = this.walks.get(peer)
      if (walk === undefined) return true
      const elapsed = now - walk.lastAtMs
      return elapsed >= SYNC_INTERVAL_MS || (elapsed >= SYNC_FOLLOW_UP_MS && (walk.newEvents > 0 || walk.passUnfinished))
    })
    if (due.length === 0) return
    const windowBits = windowBitsFor(ctx.store.sharedEventCount())
    const span = 2 ** (32 - windowBits)
    for (const peer of due) {
      let walk = this.walks.get(peer)
      if (walk === undefined) this.walks.set(peer, walk = { lastAtMs: 0, step: 0, newEvents: 0, quietAnswers: -1, passUnfinished: true, windowStart: 0 })
      walk.quietAnswers = walk.newEvents > 0 ? 0 : walk.quietAnswers + 1
      walk.passUnfinished = walk.quietAnswers < 2 ** windowBits
      let window: number
      if (walk.newEvents >= SYNC_LIMIT / 2) {
        window = Math.floor(walk.windowStart / span)
      } else {
        // An odd multiplier permutes the counter modulo 2^bits: every window, in a scattered order.
        window = (Math.imul(walk.step++, 0x9e3779b1) >>> 0) % 2 ** windowBits
      }
      walk.lastAtMs = now
      walk.newEvents = 0
      walk.windowStart = window * span
      const nonce = randomBytes(SYNC_NONCE_BYTES)
      const salt = bloomSalt(ctx.identity.publicKey, windowBits, window, nonce)
      const held = ctx.store.sharedEventsInRange(window * span, (window + 1) * span - 1).map(e => e.eventId)
      const payload = encodeSyncPayload({ windowBits, window, nonce, limit: SYNC_LIMIT, bloom: bloomBuild(salt, held) })
      ctx.send(peer, ctx.signer.sign(EventType.sync, payload))
      ctx.counters.syncRequestsSent++
    }
  }
}
