import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { performance } from 'node:perf_hooks'
import { Node } from '../node/node.js'
import type { Limits } from '../node/node.js'
import { QuietError } from '../node/errors.js'
import { CONTROL_FILE, loadIdentity, loadLastHttpPort, loadNetwork, loadOrCreateToken, rotateToken, saveLastHttpPort, saveNetwork, writeSecretJson } from '../node/config.js'
import { CONNECT_FRESHNESS_MS, MAX_ADDRESSES_PER_PEER, TransitEndpoint } from '../net/transit.js'
import { openUdpSocket } from '../net/udp.js'
import { randomBytes } from '../crypto/index.js'
import { fromHex, toHex } from '../bytes.js'
import { decodeInvite, encodeInvite } from '../wire/invite.js'
import { WireError } from '../wire/errors.js'
import { startControlApi } from '../http/control-api.js'
import type { ControlTarget } from '../http/status.js'
import { DaemonVoice, VOICE_INTERVAL_MS } from './voice.js'
import type { VoiceLevel } from './voice.js'
import type { Identity, NetworkConfig } from '../node/config.js'
import type { PeerAddress } from '../net/transit.js'
import type { RelayLimits } from '../net/relay.js'
import type { UdpSocket } from '../net/udp.js'
import { FINE_TIMER_CATCH_UP_MS } from '../sync/pacer.js'
import type { FastifyInstance } from 'fastify'

export interface DaemonOptions {
  dir: string
  udpPort?: number
  httpPort?: number
  /** The addresses peers are told to use; default: this machine's LAN IPv4 addresses, else loopback. */
  announce?: PeerAddress[]
  mtu?: number
  tickMs?: number
  /** How much the daemon says in its log (default `normal`); errors are always said. */
  voice?: VoiceLevel
  /** Rate caps in file bytes per second (`--max-upload`, `--max-download`); changeable at run time. */
  limits?: Limits
  /** Relaying for members who cannot meet (`--no-relay`, `--relay-max-rate`, `--relay-max-channels`). */
  relay?: RelayLimits
}

export const DEFAULT_INVITE_TTL_MS = 7 * 24 * 3600_000
/** Connects refused for a member's clock are logged at most this often, in all. */
const CLOCK_SKEW_LOG_MS = 60_000
/** Senders refused for their clocks remembered (and shown with the peers) at most. */
const CLOCK_SKEW_PEERS = 32
/** How often announced addresses are handed to the transit layer for (re)connecting: a member just heard of is tried within this. */
const ADDRESS_REFRESH_MS = 250
/** Addresses peers see us at, announced beside the LAN ones (a port-randomising NAT shows each peer another). */
const OBSERVED_ANNOUNCED = 2
/** The observed addresses are announced again, when they changed, at most this often. */
const OBSERVED_ANNOUNCE_MS = 5_000

/** A bind that fails because the port is taken says which port and which option changes it. */
async function portInUse<T> (binding: Promise<T>, what: string, option: string): Promise<T> {
  try {
    return await binding
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw err
    throw new QuietError('conflict', `${what} is in use by another program; choose another with ${option} (0: any free port)`)
  }
}

/** This machine's non-internal IPv4 addresses (at most MAX_ADDRESSES_PER_PEER), or loopback. */
export function defaultHosts (): string[] {
  const hosts = new Set<string>()
  for (const addresses of Object.values(os.networkInterfaces())) {
    for (const a of addresses ?? []) if (a.family === 'IPv4' && !a.internal) hosts.add(a.address)
  }
  return hosts.size === 0 ? ['127.0.0.1'] : [...hosts].slice(0, MAX_ADDRESSES_PER_PEER)
}

/**
 * One running peer: the node, its UDP socket and transit layer, the tick timer and the
 * local control API. Before a network exists it runs without a node, waiting for
 * `network create` or `join`.
 */
export class Daemon implements ControlTarget {
  node: Node | null = null
  transit: TransitEndpoint | null = null
  network: NetworkConfig | null = null
  private apiToken = ''
  private socket: UdpSocket | null = null
  private http: FastifyInstance | null = null
  private timer: NodeJS.Timeout | null = null
  private announced: PeerAddress[] | null = null
  private observedAnnouncedMs = -Infinity
  private stopping: Promise<void> | null = null
  private flushScheduled = false
  private currentLimits: Limits
  private paceTimer: NodeJS.Timeout | null = null
  private paceAtMs = Infinity
  /** The event loop's use at the last tick: each tick reports the use since. */
  private loopMark = performance.eventLoopUtilization()
  private addressesCheckedMs = -Infinity
  private lastErrorLogMs = -Infinity
  private tickWaiters: Array<() => void> = []
  private readonly clockSkews = new Map<string, { skewMs: number, atMs: number }>()
  private readonly voice: DaemonVoice
  private lookedMs = -Infinity
  private clockSkewLoggedMs = -Infinity
  private clockSkewsUnlogged = 0

  private constructor (readonly options: DaemonOptions, readonly identity: Identity) {
    this.voice = new DaemonVoice(options.voice ?? 'normal')
    this.currentLimits = options.limits ?? { maxUploadBytesPerS: null, maxDownloadBytesPerS: null }
  }

  static async start (options: DaemonOptions): Promise<Daemon> {
    const identity = loadIdentity(options.dir)
    if (identity === null) throw new QuietError('not_found', `no identity in ${options.dir}; run: qf init --dir ${options.dir}`)
    const daemon = new Daemon(options, identity)
    await daemon.begin()
    return daemon
  }

  /** The rate caps now (file bytes per second, null: none); they last until the daemon stops. */
  get limits (): Limits {
    return { ...this.currentLimits }
  }

  setLimits (limits: Limits): Limits {
    this.currentLimits = { ...limits }
    this.node?.setLimits(this.currentLimits)
    return this.limits
  }

  /** The control API's bearer token; kept in the data directory across restarts. */
  get token (): string {
    return this.apiToken
  }

  /** Replaces the API token: every page and client holding the old one gets 401 from now on. */
  rotateToken (): string {
    this.apiToken = rotateToken(this.options.dir)
    this.writeControlFile()
    return this.apiToken
  }

  private writeControlFile (): void {
    writeSecretJson(path.join(this.options.dir, CONTROL_FILE), {
      pid: process.pid, httpHost: '127.0.0.1', httpPort: this.httpPort, udpPort: this.udpPort, token: this.apiToken
    })
  }

  get udpPort (): number {
    return this.socket?.port ?? 0
  }

  get httpPort (): number {
    const address = this.http?.server.address()
    return typeof address === 'object' && address !== null ? address.port : 0
  }

  /** Where other members are told to reach this node: in invites and in its address events. */
  get announceAddresses (): PeerAddress[] {
    if (this.announced !== null) return this.announced
    const given = this.options.announce ?? []
    return given.length > 0 ? given : defaultHosts().map(host => ({ host, port: this.udpPort }))
  }

  private async begin (): Promise<void> {
    this.apiToken = loadOrCreateToken(this.options.dir)
    this.socket = await portInUse(openUdpSocket(this.options.udpPort ?? 0, (bytes, from) => {
      this.guard('handling a datagram', () => this.transit?.onDatagram(bytes, from))
      this.scheduleFlush()
    }), `UDP port ${this.options.udpPort ?? 0}`, '--port')
    const network = loadNetwork(this.options.dir)
    if (network !== null) this.openNode(network)
    this.http = await this.startHttp().catch(async (err: unknown) => { await this.socket?.close(); this.node?.close(); throw err })
    saveLastHttpPort(this.options.dir, this.httpPort)
    this.writeControlFile()
    this.timer = setInterval(() => this.guard('the periodic tick', () => this.tick()), this.options.tickMs ?? 10)
  }

  /**
   * The control API on the port asked for; without one, on the port of the last run if it is
   * free (a page left open, or a bookmarked link, carries on after a restart), else any.
   */
  private async startHttp (): Promise<FastifyInstance> {
    const asked = this.options.httpPort
    if (asked !== undefined) return await portInUse(startControlApi(this, asked), `control port ${asked} on 127.0.0.1`, '--http')
    const last = loadLastHttpPort(this.options.dir)
    if (last > 0) {
      try {
        return await startControlApi(this, last)
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw err
      }
    }
    return await startControlApi(this, 0)
  }

  requireNode (): Node {
    if (this.node === null) throw new QuietError('conflict', 'this node is in no network yet; run "qf network create NAME" or "qf join LINK"')
    return this.node
  }

  createNetwork (name: string): NetworkConfig {
    if (this.network !== null) throw new QuietError('conflict', `already in network "${this.network.name}"`)
    if (name.trim() === '') throw new QuietError('invalid_argument', 'a network needs a name')
    const network = { networkId: randomBytes(16), networkKey: randomBytes(32), name }
    saveNetwork(this.options.dir, network)
    this.openNode(network)
    this.voice.say(`created network "${network.name}"; invite others with: qf invite`)
    return network
  }

  invite (ttlMs = DEFAULT_INVITE_TTL_MS): { link: string, expiresAtMs: number } {
    const network = this.network
    if (network === null) throw new QuietError('conflict', 'this node is in no network yet; run "qf network create NAME" first')
    const expiresAtMs = Date.now() + ttlMs
    const link = encodeInvite({
      networkId: network.networkId, networkKey: network.networkKey, networkName: network.name,
      inviterPk: this.identity.publicKey, expiresAtMs, addresses: this.announceAddresses
    })
    return { link, expiresAtMs }
  }

  join (link: string): NetworkConfig {
    let invite
    try {
      invite = decodeInvite(link)
    } catch (err) {
      if (err instanceof WireError) throw new QuietError('invalid_argument', `invalid invite: ${err.message}`)
      throw err
    }
    if (invite.expiresAtMs < Date.now()) throw new QuietError('invalid_argument', `the invite expired on ${new Date(invite.expiresAtMs).toISOString()}`)
    if (this.network !== null) {
      if (toHex(this.network.networkId) === toHex(invite.networkId)) return this.network
      throw new QuietError('conflict', `already in network "${this.network.name}"`)
    }
    const network = { networkId: invite.networkId, networkKey: invite.networkKey, name: invite.networkName }
    saveNetwork(this.options.dir, network)
    this.openNode(network)
    this.transit!.setKnownAddresses(invite.inviterPk, invite.addresses)
    this.voice.say(`joined network "${network.name}"`)
    return network
  }

  private openNode (network: NetworkConfig): void {
    this.network = network
    this.transit = new TransitEndpoint({
      identity: this.identity,
      networkId: network.networkId,
      networkKey: network.networkKey,
      mtu: this.options.mtu,
      sendDatagram: (bytes, to) => this.socket?.send(bytes, to),
      deliver: (peer, event) => this.node?.receive(peer, event, Date.now()),
      now: () => Date.now(),
      onClockSkew: (peer, skewMs) => this.noteClockSkew(peer, skewMs),
      relay: this.options.relay
    })
    this.node = Node.open({ dataDir: this.options.dir, identity: this.identity, networkKey: network.networkKey, transport: this.transit, startMs: Date.now(), backgroundSync: true, limits: this.currentLimits, paceCatchUpMs: FINE_TIMER_CATCH_UP_MS })
    const dropped = this.node.droppedLegacyFiles
    if (dropped.length > 0) console.error(`quiet-files: dropped ${dropped.length} file${dropped.length === 1 ? '' : 's'} shared before verified windows (file hashing v2), which no member can check any more; share ${dropped.length === 1 ? 'it' : 'them'} again: ${dropped.join(', ')}`)
    this.announced = this.announceAddresses
    this.node.announce(this.identity.name, this.announced)
  }

  /**
   * A member whose clock is too far off ours cannot connect (connects are only fresh for
   * CONNECT_FRESHNESS_MS): said in the log at most once a minute in all, with how many were
   * refused since, and shown with the peers. Anyone with the network key can make such
   * connects from any number of keys, so at most CLOCK_SKEW_PEERS of them are remembered.
   */
  private noteClockSkew (peer: string, skewMs: number): void {
    const now = Date.now()
    this.clockSkews.delete(peer)
    this.clockSkews.set(peer, { skewMs, atMs: now })
    if (this.clockSkews.size > CLOCK_SKEW_PEERS) this.clockSkews.delete(this.clockSkews.keys().next().value!)
    this.clockSkewsUnlogged++
    if (now - this.clockSkewLoggedMs < CLOCK_SKEW_LOG_MS) return
    const name = this.node?.members().find(m => m.publicKey === peer)?.name ?? `${peer.slice(0, 16)}…`
    const others = this.clockSkewsUnlogged - 1
    console.error(`quiet-files: refused a connect from ${name}: its clock is ${Math.round(Math.abs(skewMs) / 1000)} s ${skewMs > 0 ? 'ahead of' : 'behind'} this machine's, more than ${CONNECT_FRESHNESS_MS / 1000} s apart; set the clocks right` +
      (others > 0 ? ` (${others} more such connects refused since the last note)` : ''))
    this.clockSkewLoggedMs = now
    this.clockSkewsUnlogged = 0
  }

  /** Members whose connects were refused lately for their clocks, with how far off (ms, positive: ahead). */
  recentClockSkews (): Map<string, number> {
    const now = Date.now()
    const recent = new Map<string, number>()
    for (const [peer, seen] of this.clockSkews) {
      if (now - seen.atMs <= CLOCK_SKEW_LOG_MS) recent.set(peer, seen.skewMs)
      else this.clockSkews.delete(peer)
    }
    return recent
  }

  /**
   * A daemon keeps running through an unexpected error in one step (a full disk, a bug):
   * it says what failed, at most once a second, and carries on with the next step.
   */
  private guard (what: string, step: () => void): void {
    try {
      step()
    } catch (err) {
      const now = Date.now()
      if (now - this.lastErrorLogMs >= 1000) {
        this.lastErrorLogMs = now
        console.error(`quiet-files: error while ${what}: ${err instanceof Error ? err.stack ?? err.message : String(err)}`)
      }
    }
  }

  /** Answers to a burst of incoming datagrams leave together, once the burst is handled. */
  private scheduleFlush (): void {
    if (this.flushScheduled) return
    this.flushScheduled = true
    setImmediate(() => {
      this.flushScheduled = false
      this.guard('sending', () => this.transit?.flush())
      this.schedulePacing()
    })
  }

  /**
   * Paced slices are due between ticks: a timer for the next one, so that a fast path is
   * not held to one burst per tick (a burst a small bottleneck queue would drop).
   */
  private schedulePacing (): void {
    const node = this.node
    if (node === null || this.stopping !== null) return
    const next = node.pace(Date.now())
    this.transit?.flush()
    if (next === null || next >= this.paceAtMs) return
    if (this.paceTimer !== null) clearTimeout(this.paceTimer)
    this.paceAtMs = next
    this.paceTimer = setTimeout(() => {
      this.paceTimer = null
      this.paceAtMs = Infinity
      this.guard('pacing', () => this.schedulePacing())
    }, Math.max(0, next - Date.now()))
  }

  /** Resolves once the next periodic tick has run, or at once when the daemon is stopping. */
  async afterNextTick (): Promise<void> {
    if (this.stopping !== null) return
    await new Promise<void>(resolve => this.tickWaiters.push(resolve))
  }

  get isStopping (): boolean {
    return this.stopping !== null
  }

  private tick (): void {
    try {
      this.step()
    } finally {
      this.wakeTickWaiters()
    }
  }

  private wakeTickWaiters (): void {
    const waiters = this.tickWaiters
    this.tickWaiters = []
    for (const wake of waiters) wake()
  }

  private step (): void {
    const node = this.node
    const transit = this.transit
    if (node === null || transit === null) return
    const now = Date.now()
    if (now - this.addressesCheckedMs >= ADDRESS_REFRESH_MS) {
      this.addressesCheckedMs = now
      const byPeer = new Map<string, PeerAddress[]>()
      for (const a of node.addresses()) byPeer.set(a.publicKey, [...byPeer.get(a.publicKey) ?? [], { host: a.host, port: a.port }])
      for (const [peer, addresses] of byPeer) transit.setKnownAddresses(fromHex(peer, 32), addresses)
      if (now - this.observedAnnouncedMs >= OBSERVED_ANNOUNCE_MS) this.announceObserved(node, transit, now)
    }
    transit.tick()
    const loopUse = performance.eventLoopUtilization()
    const load = performance.eventLoopUtilization(loopUse, this.loopMark)
    this.loopMark = loopUse
    node.onLoopLoad(load.utilization, load.idle + load.active)
    node.tick(Date.now())
    transit.flush()
    this.schedulePacing()
    if (now - this.lookedMs >= VOICE_INTERVAL_MS) {
      this.lookedMs = now
      const connected = new Map<string, string | null>()
      for (const { peer, route } of transit.knownPeers()) if (route.kind !== 'unreachable') connected.set(peer, route.kind === 'relayed' ? route.via : null)
      this.voice.look(node, connected)
    }
  }

  /**
   * Where peers see this node (its NAT's public address) is announced beside the LAN
   * addresses, so members elsewhere can try it; not when addresses were given by hand.
   */
  private announceObserved (node: Node, transit: TransitEndpoint, now: number): void {
    if ((this.options.announce ?? []).length > 0) return
    const own = this.announceAddresses
    const lan = defaultHosts().map(host => ({ host, port: this.udpPort }))
    const seen = transit.observedAddresses().filter(a => !lan.some(b => b.host === a.host && b.port === a.port)).slice(0, OBSERVED_ANNOUNCED)
    const wanted = [...lan.slice(0, MAX_ADDRESSES_PER_PEER - seen.length), ...seen]
    if (wanted.length === own.length && wanted.every(a => own.some(b => b.host === a.host && b.port === a.port))) return
    this.observedAnnouncedMs = now
    this.announced = wanted
    node.announce(this.identity.name, wanted)
  }

  /** Stops timers and sockets, closes the node; safe to call twice. */
  async stop (): Promise<void> {
    this.stopping ??= (async () => {
      if (this.timer !== null) clearInterval(this.timer)
      if (this.paceTimer !== null) clearTimeout(this.paceTimer)
      this.wakeTickWaiters()
      this.transit?.flush()
      await this.http?.close()
      await this.socket?.close()
      this.node?.close()
      fs.rmSync(path.join(this.options.dir, CONTROL_FILE), { force: true })
    })()
    await this.stopping
  }
}
