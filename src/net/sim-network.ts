import { SeededRandom } from './random.js'
import type { Transport } from './transport.js'

/** Behaviour of one direction of a simulated link. Every random choice comes from the seed. */
export interface LinkOptions {
  latencyMs: number
  /** Extra uniform delay in [0, jitterMs). */
  jitterMs: number
  /** Probability that a packet is dropped. */
  loss: number
  /** Probability that a packet is delivered twice. */
  duplicate: number
  /** Probability that a packet is held back by `reorderDelayMs`, arriving after later ones. */
  reorder: number
  reorderDelayMs: number
  /** Bits per second; Infinity for no limit. Packets queue behind each other. */
  bandwidthBps: number
  /** Packets that would wait longer than this in the sender's queue are dropped (tail drop). */
  maxQueueMs: number
  /** A cut link drops everything. */
  up: boolean
}

export const DEFAULT_LINK: LinkOptions = {
  latencyMs: 5, jitterMs: 0, loss: 0, duplicate: 0, reorder: 0, reorderDelayMs: 20,
  bandwidthBps: Infinity, maxQueueMs: 2000, up: true
}

/** What the simulated network drives: a node's input and its periodic step. */
export interface SimEndpoint {
  receive (peer: string, event: Uint8Array, tMs: number): void
  tick (tMs: number): void
}

/** Sees (and may replace or drop, by returning null) every packet as it is sent. */
export type Interceptor = (from: string, to: string, packet: Uint8Array) => Uint8Array | null

interface Delivery {
  at: number
  seq: number
  from: string
  to: string
  packet: Uint8Array
  counters: LinkCounters
}

interface LinkState {
  options: LinkOptions
  busyUntil: number
  counters: LinkCounters
}

export interface LinkCounters {
  sent: number
  delivered: number
  dropped: number
  /** Packets sent, by event type byte. */
  byType: Map<number, number>
}

/**
 * Many endpoints in one process on a simulated clock. Nothing here reads the wall clock or
 * an unseeded random source, so a run is replayed exactly from its seed.
 */
export class SimNetwork {
  private readonly endpoints = new Map<string, SimEndpoint>()
  /** How many times each id was added: a restarted peer is a new session. */
  private readonly sessions = new Map<string, number>()
  private readonly links = new Map<string, LinkState>()
  private readonly counters = new Map<string, LinkCounters>()
  private readonly queue: Delivery[] = []
  private readonly random: SeededRandom
  private seq = 0
  private clock = 0
  private interceptor: Interceptor | null = null

  constructor (readonly seed = 1) {
    this.random = new SeededRandom(seed)
  }

  get now (): number {
    return this.clock
  }

  /** Adds an endpoint and returns the transport it sends through. */
  add (id: string, endpoint: SimEndpoint): Transport {
    if (this.endpoints.has(id)) throw new Error(`endpoint ${id} already exists`)
    this.endpoints.set(id, endpoint)
    this.sessions.set(id, (this.sessions.get(id) ?? 0) + 1)
    return {
      peers: () => this.peersOf(id),
      session: peer => this.sessions.get(peer),
      send: (peer, event) => this.send(id, peer, event)
    }
  }

  /**
   * Removes an endpoint (a node that stopped). Packets still on the wire to or from it are
   * dropped, as a restarted peer's new connections would never accept them.
   */
  remove (id: string): void {
    this.endpoints.delete(id)
    const kept = this.queue.filter(d => d.from !== id && d.to !== id)
    for (const d of this.queue) if (d.from === id || d.to === id) d.counters.dropped++
    this.queue.length = 0
    for (const d of kept) pushHeap(this.queue, d)
  }

  /** Connects a and b both ways with the same options. */
  link (a: string, b: string, options: Partial<LinkOptions> = {}): void {
    this.setLink(a, b, options)
    this.setLink(b, a, options)
  }

  /** Sets (or changes) one direction of a link. */
  setLink (from: string, to: string, options: Partial<LinkOptions>): void {
    const key = linkKey(from, to)
    const current = this.links.get(key)
    this.links.set(key, { options: { ...(current?.options ?? DEFAULT_LINK), ...options }, busyUntil: current?.busyUntil ?? 0, counters: this.linkCounters(from, to) })
  }

  intercept (interceptor: Interceptor | null): void {
    this.interceptor = interceptor
  }

  linkCounters (from: string, to: string): LinkCounters {
    const key = linkKey(from, to)
    let c = this.counters.get(key)
    if (c === undefined) { c = { sent: 0, delivered: 0, dropped: 0, byType: new Map() }; this.counters.set(key, c) }
    return c
  }

  /** Advances the clock by `stepMs`: delivers what is due, in time order, then ticks every endpoint. */
  step (stepMs: number): void {
    const until = this.clock + stepMs
    while (this.queue.length > 0 && this.queue[0]!.at <= until) {
      const d = popMin(this.queue)
      this.clock = Math.max(this.clock, d.at)
      const endpoint = this.endpoints.get(d.to)
      if (endpoint === undefined) { d.counters.dropped++; continue }
      d.counters.delivered++
      endpoint.receive(d.from, d.packet, this.clock)
    }
    this.clock = until
    for (const endpoint of this.endpoints.values()) endpoint.tick(this.clock)
  }

  /** Steps until `done()` is true; throws after `maxMs` of simulated time. Returns the time taken. */
  runUntil (done: () => boolean, options: { stepMs?: number, maxMs?: number, onStep?: (tMs: number) => void } = {}): number {
    const stepMs = options.stepMs ?? 10
    const deadline = this.clock + (options.maxMs ?? 600_000)
    const start = this.clock
    while (!done()) {
      if (this.clock >= deadline) throw new Error(`simulation did not finish within ${options.maxMs ?? 600_000} ms (seed ${this.seed})`)
      this.step(stepMs)
      options.onStep?.(this.clock)
    }
    return this.clock - start
  }

  /** Steps for `durationMs` of simulated time. */
  run (durationMs: number, options: { stepMs?: number, onStep?: (tMs: number) => void } = {}): void {
    const end = this.clock + durationMs
    this.runUntil(() => this.clock >= end, { ...options, maxMs: durationMs + (options.stepMs ?? 10) })
  }

  get pending (): number {
    return this.queue.length
  }

  private peersOf (id: string): string[] {
    const peers: string[] = []
    for (const [key, link] of this.links) {
      const [from, to] = key.split('>') as [string, string]
      if (from === id && link.options.up && this.endpoints.has(to)) peers.push(to)
    }
    return peers
  }

  private send (from: string, to: string, original: Uint8Array): void {
    const link = this.links.get(linkKey(from, to))
    const counters = link?.counters ?? this.linkCounters(from, to)
    counters.sent++
    counters.byType.set(original[1]!, (counters.byType.get(original[1]!) ?? 0) + 1)
    // Senders never touch a packet after sending it, so only an interceptor needs a copy.
    const packet = this.interceptor === null ? original : this.interceptor(from, to, original.slice())
    if (link === undefined || !link.options.up || packet === null) { counters.dropped++; return }
    const o = link.options
    const transmitMs = Number.isFinite(o.bandwidthBps) ? (packet.length * 8 * 1000) / o.bandwidthBps : 0
    const startAt = Math.max(this.clock, link.busyUntil)
    if (startAt - this.clock > o.maxQueueMs || this.random.chance(o.loss)) { counters.dropped++; return }
    link.busyUntil = startAt + transmitMs
    const copies = this.random.chance(o.duplicate) ? 2 : 1
    for (let i = 0; i < copies; i++) {
      let at = link.busyUntil + o.latencyMs + (o.jitterMs > 0 ? this.random.next() * o.jitterMs : 0)
      if (this.random.chance(o.reorder)) at += o.reorderDelayMs
      pushHeap(this.queue, { at, seq: this.seq++, from, to, packet, counters })
    }
  }
}

function linkKey (from: string, to: string): string {
  return `${from}>${to}`
}

function before (a: Delivery, b: Delivery): boolean {
  return a.at < b.at || (a.at === b.at && a.seq < b.seq)
}

function pushHeap (heap: Delivery[], item: Delivery): void {
  heap.push(item)
  let i = heap.length - 1
  while (i > 0) {
    const parent = (i - 1) >> 1
    if (!before(heap[i]!, heap[parent]!)) break
    ;[heap[i], heap[parent]] = [heap[parent]!, heap[i]!]
    i = parent
  }
}

function popMin (heap: Delivery[]): Delivery {
  const top = heap[0]!
  const last = heap.pop()!
  if (heap.length > 0) {
    heap[0] = last
    let i = 0
    for (;;) {
      const l = 2 * i + 1
      const r = l + 1
      let m = i
      if (l < heap.length && before(heap[l]!, heap[m]!)) m = l
      if (r < heap.length && before(heap[r]!, heap[m]!)) m = r
      if (m === i) break
      ;[heap[i], heap[m]] = [heap[m]!, heap[i]!]
      i = m
    }
  }
  return top
}
