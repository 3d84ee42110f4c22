import { toHex } from '../bytes.js'
import type { Limits, Node } from '../node/node.js'
import type { PathReport } from '../sync/requester.js'
import type { TransitEndpoint, PeerAddress, PeerRoute } from '../net/transit.js'
import type { Identity, NetworkConfig } from '../node/config.js'

/** What the control API needs of the daemon it serves (the daemon provides it; nothing here imports the daemon). */
export interface ControlTarget {
  readonly node: Node | null
  readonly transit: TransitEndpoint | null
  readonly identity: Identity
  readonly network: NetworkConfig | null
  readonly udpPort: number
  readonly announceAddresses: PeerAddress[]
  /** The bearer token every /api route needs. */
  readonly token: string
  readonly isStopping: boolean
  requireNode: () => Node
  createNetwork: (name: string) => NetworkConfig
  invite: (ttlMs?: number) => { link: string, expiresAtMs: number }
  join: (link: string) => NetworkConfig
  /** Resolves once the next periodic tick has run, or at once when stopping. */
  afterNextTick: () => Promise<void>
  /** Members whose connects were refused lately for their clocks, with how far off (ms). */
  recentClockSkews: () => Map<string, number>
  /** A new token; the old one gets 401 from then on. */
  rotateToken: () => string
  /** Rate caps, file bytes per second (null: none), and changing them. */
  readonly limits: Limits
  setLimits: (limits: Limits) => Limits
}

/** Rate caps as the API shows them: file bytes per second, null for none. */
export interface LimitsView { max_upload_bytes_per_s: number | null, max_download_bytes_per_s: number | null }

export function limitsView (limits: Limits): LimitsView {
  return { max_upload_bytes_per_s: limits.maxUploadBytesPerS, max_download_bytes_per_s: limits.maxDownloadBytesPerS }
}

/** Whether this node relays for members who cannot meet, its caps (null: none), and what it relays now. */
export interface RelayReport { enabled: boolean, max_bytes_per_s: number | null, max_channels: number, channels: number, relayed_bytes: number, dropped: number }

function relayOf (transit: TransitEndpoint | null): RelayReport | null {
  if (transit === null) return null
  const limits = transit.relayLimits
  const stats = transit.stats
  return {
    enabled: limits.enabled,
    max_bytes_per_s: Number.isFinite(limits.maxBytesPerS) ? limits.maxBytesPerS : null,
    max_channels: limits.maxChannels,
    channels: stats.relayChannels,
    relayed_bytes: stats.relayedBytes,
    dropped: stats.relayDropped
  }
}

/** The node, its network, peers, downloads and counters: what `GET /api/status` answers. */
export function statusOf (daemon: ControlTarget): Record<string, unknown> {
  const node = daemon.node
  const transit = daemon.transit
  return {
    public_key: toHex(daemon.identity.publicKey),
    name: daemon.identity.name,
    network: daemon.network === null ? null : { id: toHex(daemon.network.networkId), name: daemon.network.name },
    udp_port: daemon.udpPort,
    announce: daemon.announceAddresses,
    peers: peersOf(daemon),
    connections: transit?.connectionCount() ?? 0,
    downloads: node?.downloads() ?? [],
    limits: limitsView(daemon.limits),
    relay: relayOf(transit),
    stats: node?.stats() ?? null,
    transit: transit?.stats ?? null
  }
}

export interface PeerReport {
  public_key: string
  name: string | null
  address: string | null
  addresses: string[]
  connected: boolean
  /** How it is reached: directly, through a relay (`via`), or not at all since `since_ms`. */
  route: 'direct' | 'relayed' | 'unreachable'
  via: { public_key: string, name: string | null } | null
  since_ms: number | null
  /** Why the last relay asked for was refused: `off`, `unreachable` or `full`. */
  relay_refused: string | null
  clock_skew_seconds: number | null
  bad_windows: number
  trusted: boolean
  path: PathReport | null
}

function routeReport (route: PeerRoute | undefined, names: Map<string, string>): Pick<PeerReport, 'route' | 'via' | 'since_ms' | 'relay_refused'> {
  if (route === undefined) return { route: 'unreachable', via: null, since_ms: null, relay_refused: null }
  return {
    route: route.kind,
    via: route.kind === 'relayed' ? { public_key: route.via, name: names.get(route.via) ?? null } : null,
    since_ms: route.sinceMs,
    relay_refused: route.kind === 'unreachable' ? route.relayRefused ?? null : null
  }
}

/**
 * Members other than this node, then peers known only by address so far (an inviter before
 * its announcement arrived) or by a connect refused for its clock: `address` is the one in
 * use (or tried next), `addresses` all announced; `clock_skew_seconds` how far its clock
 * was off when its connect was refused for that lately; `bad_windows` how many windows it
 * supplied failed their hash, and `trusted` false while it is asked for nothing.
 */
export function peersOf (daemon: ControlTarget): PeerReport[] {
  const node = daemon.node
  if (node === null) return []
  const hostPort = (a: PeerAddress): string => `${a.host}:${a.port}`
  const connected = new Set(daemon.transit?.peers() ?? [])
  const known = new Map((daemon.transit?.knownPeers() ?? []).map(k => [k.peer, k]))
  const self = toHex(daemon.identity.publicKey)
  const names = new Map(node.members().filter(m => m.publicKey !== self).map(m => [m.publicKey, m.name]))
  const skews = daemon.recentClockSkews()
  const badWindows = node.badWindows()
  const unnamed = [...new Set([...known.keys(), ...skews.keys()])].filter(peer => !names.has(peer))
  return [...names.keys(), ...unnamed].map(peer => {
    const k = known.get(peer)
    const skewMs = skews.get(peer) ?? null
    return {
      public_key: peer,
      name: names.get(peer) ?? null,
      address: k === undefined ? null : hostPort(k.address),
      addresses: k?.addresses.map(hostPort) ?? [],
      connected: connected.has(peer),
      ...routeReport(k?.route, names),
      clock_skew_seconds: skewMs === null ? null : Math.round(skewMs / 1000),
      // Windows it supplied that failed their hash; not trusted: not asked for anything now.
      bad_windows: badWindows.get(peer) ?? 0,
      trusted: node.trusted(peer),
      // Downloads' congestion control of the path from it: pace asked, bottleneck, round trip.
      path: node.pathTo(peer)
    }
  })
}
