import { Bitset } from '../sync/bitset.js'
import { rootHashOf } from '../files/hashing.js'
import { HASH_BYTES } from '../crypto/index.js'
import { bytesEqual, toHex } from '../bytes.js'
import { decodeWindowHashes, encodeWindowHashesRequest } from '../wire/index.js'
import type { NodeContext } from './context.js'
import type { LocalFile } from './local-file.js'

/** How long a peer has to answer for a file's window hashes before another is asked. */
export const WINDOW_HASHES_RETRY_MS = 500
/** An answer that stopped short (its tail lost) is asked for again once nothing came for this long. */
export const WINDOW_HASHES_GAP_MS = 50
/** A peer that said it has no list (or sent a bad one) is asked again after this. */
export const NO_LIST_RETRY_MS = 3000
/** Windows asked for in one request (the answer is at most 273 events). */
const WINDOWS_PER_REQUEST = 4096

interface PendingList {
  local: LocalFile
  hashes: Uint8Array
  got: Bitset
  missing: number
  /** The peer asked last, and when; when its last hashes came. */
  peer: string | null
  askedAtMs: number
  answeredAtMs: number
  /** Peers that said they do not have the list, or sent one that failed the root, and when. */
  tried: Map<string, number>
}

/**
 * Fetches a file's window hashes before any of its slices: asked of one peer at a time,
 * taken only from the peer asked, and kept once they hash to the descriptor's root. (An
 * empty file needs none: `LocalFile.open` checks it on the spot.)
 */
export class WindowHashLists {
  private readonly pending = new Map<string, PendingList>()

  /** `onBadList`: a peer sent a list that does not hash to the root. */
  constructor (private readonly ctx: NodeContext, private readonly onBadList: (peer: string, key: string) => void) {}

  /** Asks for the lists of `files` that lack one, each of a peer it may ask (not `excluded`). */
  tick (files: LocalFile[], peers: readonly string[], excluded: (key: string) => ReadonlySet<string> | undefined): void {
    const now = this.ctx.now()
    for (const local of files) {
      if (local.windows !== null) { this.pending.delete(local.key); continue }
      let list = this.pending.get(local.key)
      if (list !== undefined && list.peer !== null && now - list.askedAtMs < WINDOW_HASHES_RETRY_MS && !stoppedShort(list, now)) continue
      if (list === undefined) {
        const windows = local.layout.windows
        list = { local, hashes: new Uint8Array(windows * HASH_BYTES), got: new Bitset(windows), missing: windows, peer: null, askedAtMs: -Infinity, answeredAtMs: -Infinity, tried: new Map() }
        this.pending.set(local.key, list)
      }
      const ban = excluded(local.key)
      // The next peer not tried lately; once all were, they are asked again later (they may have it by then).
      const peer = peers.find(p => ban?.has(p) !== true && !this.saidNone(local.key, p, now))
      if (peer === undefined) continue
      list.peer = peer
      list.askedAtMs = now
      for (let w = 0; w < local.layout.windows; w += WINDOWS_PER_REQUEST) {
        const end = Math.min(local.layout.windows, w + WINDOWS_PER_REQUEST)
        // From the first window still missing: an answer that overflowed a small router queue
        // lost its tail, and asking for the whole of it again would lose the same tail again.
        let first = w
        while (first < end && list.got.has(first)) first++
        if (first === end) continue
        this.ctx.send(peer, encodeWindowHashesRequest({ fileId: local.descriptor.fileId, firstWindow: first, count: end - first }))
      }
    }
  }

  /** A run of window hashes (or "none") from `peer`; only the peer asked is listened to. */
  onWindowHashes (peer: string, bytes: Uint8Array): void {
    const event = decodeWindowHashes(bytes)
    const key = toHex(event.fileId)
    const list = this.pending.get(key)
    if (list === undefined || list.peer !== peer) { this.ctx.counters.windowHashesUnsolicited++; return }
    const count = event.hashes.length / HASH_BYTES
    if (count === 0) {
      list.tried.set(peer, this.ctx.now())
      list.peer = null
      return
    }
    if (event.firstWindow + count > list.local.layout.windows) { this.ctx.counters.windowHashesUnsolicited++; return }
    list.answeredAtMs = this.ctx.now()
    for (let k = 0; k < count; k++) {
      const w = event.firstWindow + k
      if (!list.got.add(w)) continue
      list.hashes.set(event.hashes.subarray(k * HASH_BYTES, (k + 1) * HASH_BYTES), w * HASH_BYTES)
      list.missing--
    }
    if (list.missing > 0) return
    if (bytesEqual(rootHashOf(list.local.descriptor.size, list.hashes), list.local.descriptor.rootHash)) {
      this.keep(list.local, list.hashes)
      return
    }
    // A list that does not hash to the root: its sender lied. Start over with someone else.
    this.onBadList(peer, key)
    list.tried.set(peer, this.ctx.now())
    list.got = new Bitset(list.local.layout.windows)
    list.missing = list.local.layout.windows
    list.peer = null
  }

  /** Whether the peer said lately it has no list for the file (or sent a bad one). */
  saidNone (key: string, peer: string, now: number): boolean {
    return now - (this.pending.get(key)?.tried.get(peer) ?? -Infinity) < NO_LIST_RETRY_MS
  }

  forget (key: string): void {
    this.pending.delete(key)
  }

  private keep (local: LocalFile, hashes: Uint8Array): void {
    this.ctx.store.putWindowHashes(local.descriptor.fileId, hashes)
    local.setWindowHashes(hashes)
    this.pending.delete(local.key)
  }
}

/** The asked peer's hashes began to come and then stopped, with some still missing. */
function stoppedShort (list: PendingList, now: number): boolean {
  return list.answeredAtMs >= list.askedAtMs && now - list.answeredAtMs >= WINDOW_HASHES_GAP_MS
}
