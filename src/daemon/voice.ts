import type { Node } from '../node/node.js'
import type { Progress } from '../node/progress.js'

/** How much the daemon says: `quiet` only errors, `normal` one line per thing that happened, `verbose` also progress. */
export type VoiceLevel = 'quiet' | 'normal' | 'verbose'

/** How often the daemon looks for things to say. */
export const VOICE_INTERVAL_MS = 1000

const formatMiB = (bytes: number): string => bytes >= 1024 * 1024 ? `${(bytes / 1024 / 1024).toFixed(1)} MiB` : `${bytes} B`

/**
 * The daemon's log, one line per event a person would want to know of: peers connecting
 * and leaving, files appearing in the network, downloads starting, stalling and ending.
 * It compares what it sees once a second with what it saw before, so nothing in the node
 * has to report to it.
 */
export class DaemonVoice {
  /** Connected peers and how each is reached (`null`: directly; else the relay's key). */
  private peers = new Map<string, string | null>()
  private readonly states = new Map<string, string>()
  private primed = false

  constructor (private readonly level: VoiceLevel, private readonly write: (line: string) => void = line => console.log(line)) {}

  say (line: string): void {
    if (this.level !== 'quiet') this.write(`quiet-files: ${line}`)
  }

  /**
   * Looks at the node and its connected peers (each with the relay it is reached through,
   * or null: directly); says what changed since the last look.
   */
  look (node: Node, connected: ReadonlyMap<string, string | null>): void {
    if (this.level === 'quiet') return
    const names = new Map(node.members().map(m => [m.publicKey, m.name]))
    const nameOf = (peer: string): string => names.get(peer) ?? `${peer.slice(0, 16)}…`
    const how = (via: string | null): string => via === null ? 'directly' : `through ${nameOf(via)} (relayed)`
    for (const [peer, via] of connected) {
      if (!this.peers.has(peer)) this.say(`connected to ${nameOf(peer)} ${how(via)}`)
      else if (this.peers.get(peer) !== via) this.say(`${nameOf(peer)} is now reached ${how(via)}`)
    }
    for (const peer of this.peers.keys()) if (!connected.has(peer)) this.say(`lost the connection to ${nameOf(peer)}`)
    this.peers = new Map(connected)
    for (const file of node.files()) {
      const before = this.states.get(file.fileId)
      const state = file.state
      this.states.set(file.fileId, state)
      // The files already there at start are not news.
      if (!this.primed || before === state) {
        if (this.level === 'verbose' && this.primed && state === 'active') this.say(`${file.name}: ${file.percent.toFixed(1)}%, ${formatMiB(file.speedBytesPerSecond)}/s`)
        continue
      }
      const sharedBy = node.descriptorInfo(file.fileId).sharedBy
      for (const line of this.describe(file, before, sharedBy === node.publicKey ? null : nameOf(sharedBy))) this.say(line)
    }
    this.primed = true
  }

  /** `sharer`: the member who shared it, null for this node. */
  private describe (file: Progress, before: string | undefined, sharer: string | null): string[] {
    const what = `${file.name} (${formatMiB(file.bytesTotal)}, ${file.fileId})`
    if (before !== undefined) {
      const line = this.change(file, before, what)
      return line === null ? [] : [line]
    }
    if (sharer === null) return [`shared ${what}`]
    // A small file may be listed and fetched between two looks: both are news.
    const since = file.state === 'available' ? null : this.change(file, 'available', what)
    return since === null ? [`${sharer} shared ${what}`] : [`${sharer} shared ${what}`, since]
  }

  private change (file: Progress, before: string, what: string): string | null {
    switch (file.state) {
      case 'queued': case 'active':
        if (before === 'paused') return `resumed ${file.name}`
        if (before === 'stalled') return `${file.name} goes on`
        // Between queued and active is no news; from a download that ended without the file, a new one.
        return before === 'queued' || before === 'active' || before === 'complete' ? null : `downloading ${what}`
      case 'paused': return `paused ${file.name} at ${file.percent.toFixed(1)}%`
      case 'stalled': return `${file.name} stalled: ${file.reason ?? 'cannot go on'}; retrying by itself`
      case 'complete': return `downloaded ${file.name}, verified`
      case 'failed': return `${file.name} failed: ${file.reason ?? ''}`
      case 'cancelled': return `cancelled ${file.name}; its partial data is deleted`
      case 'expired': return `${file.name} expired before it was complete`
      default: return null
    }
  }
}
