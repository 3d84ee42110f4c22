import Database from 'better-sqlite3'
import { MIGRATIONS, PROJECTION_TABLES } from './schema.js'

export interface DescriptorRow {
  fileId: Uint8Array
  size: number
  slices: number
  windows: number
  noncePrefix: Uint8Array
  key: Uint8Array
  rootHash: Uint8Array
  name: string
  mediaType: string
  sharedBy: Uint8Array
  sharedAtMs: number
  eventId: Uint8Array
}

export type WantedState = 'wanted' | 'paused' | 'expired'
export interface WantedRow {
  fileId: Uint8Array
  priority: number
  state: WantedState
  ttlMs: number
  requestedAtMs: number
  updatedAtMs: number
}

export type LocalStatus = 'partial' | 'complete' | 'failed'
export interface LocalFileRow {
  fileId: Uint8Array
  haveSlices: number
  haveBytes: number
  status: LocalStatus
  reason: string | null
}

export interface PeerRow {
  peerPk: Uint8Array
  slicesAccepted: number
  slicesRejected: number
  requestsAnswered: number
  badWindows: number
  lastSeenMs: number
}

export interface LoggedEvent {
  seq: number
  type: number
  body: Uint8Array
}

type Row = Record<string, unknown>
const u8 = (v: unknown): Uint8Array => v as Uint8Array

function toDescriptor (r: Row): DescriptorRow {
  return {
    fileId: u8(r.file_id), size: Number(r.size), slices: Number(r.slices), windows: Number(r.windows),
    noncePrefix: u8(r.nonce_prefix), key: u8(r.file_key), rootHash: u8(r.root_hash),
    name: String(r.name), mediaType: String(r.media_type), sharedBy: u8(r.shared_by),
    sharedAtMs: Number(r.shared_at_ms), eventId: u8(r.event_id)
  }
}
function toWanted (r: Row): WantedRow {
  return {
    fileId: u8(r.file_id), priority: Number(r.priority), state: r.state as WantedState, ttlMs: Number(r.ttl_ms),
    requestedAtMs: Number(r.requested_at_ms), updatedAtMs: Number(r.updated_at_ms)
  }
}
function toLocal (r: Row): LocalFileRow {
  return {
    fileId: u8(r.file_id), haveSlices: Number(r.have_slices), haveBytes: Number(r.have_bytes),
    status: r.status as LocalStatus, reason: r.reason === null ? null : String(r.reason)
  }
}

/** The node's SQLite database: event log, projections and sync state. Synchronous by design. */
export class Store {
  private readonly db: Database.Database
  private readonly stmt

  private constructor (filePath: string) {
    this.db = new Database(filePath)
    this.db.pragma('journal_mode = WAL')
    // WAL + NORMAL never corrupts; a crash can lose the last commits, which only ever
    // forgets slices that are on disk (the safe direction).
    this.db.pragma('synchronous = NORMAL')
    this.db.pragma('foreign_keys = ON')
    this.migrate()
    const db = this.db
    this.stmt = {
      appendEvent: db.prepare('INSERT OR IGNORE INTO events (event_id, type, file_id, sync_key, body, received_at_ms) VALUES (?, ?, ?, ?, ?, ?)'),
      sharedInRange: db.prepare('SELECT event_id, body FROM events WHERE sync_key BETWEEN ? AND ? ORDER BY sync_key'),
      sharedCount: db.prepare('SELECT count(*) FROM events WHERE sync_key IS NOT NULL').pluck(),
      putMember: db.prepare(`INSERT INTO members (peer_pk, name, announced_at_ms) VALUES (?, ?, ?)
        ON CONFLICT (peer_pk) DO UPDATE SET name = excluded.name, announced_at_ms = excluded.announced_at_ms
        WHERE excluded.announced_at_ms >= members.announced_at_ms`),
      listMembers: db.prepare('SELECT * FROM members ORDER BY name, peer_pk'),
      dropOlderAddresses: db.prepare('DELETE FROM addresses WHERE peer_pk = ? AND announced_at_ms < ?'),
      putAddress: db.prepare(`INSERT OR IGNORE INTO addresses (peer_pk, host, port, announced_at_ms)
        SELECT @peerPk, @host, @port, @at WHERE NOT EXISTS (SELECT 1 FROM addresses WHERE peer_pk = @peerPk AND announced_at_ms > @at)`),
      listAddresses: db.prepare('SELECT * FROM addresses ORDER BY peer_pk, host, port'),
      putMessage: db.prepare('INSERT OR IGNORE INTO messages (event_id, author_pk, file_id, text, created_at_ms) VALUES (?, ?, ?, ?, ?)'),
      listMessages: db.prepare('SELECT * FROM messages ORDER BY created_at_ms, event_id'),
      hasEvent: db.prepare('SELECT 1 FROM events WHERE event_id = ?').pluck(),
      getEvent: db.prepare('SELECT body FROM events WHERE event_id = ?').pluck(),
      eventsAfter: db.prepare('SELECT seq, type, body FROM events WHERE seq > ? ORDER BY seq LIMIT ?'),
      lastWantType: db.prepare('SELECT body FROM events WHERE file_id = ? AND type = ? ORDER BY seq DESC LIMIT 1').pluck(),
      getMeta: db.prepare('SELECT value FROM meta WHERE key = ?').pluck(),
      setMeta: db.prepare('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value'),
      putDescriptor: db.prepare(`INSERT OR REPLACE INTO descriptors
        (file_id, size, slices, windows, nonce_prefix, file_key, root_hash, name, media_type, shared_by, shared_at_ms, event_id)
        VALUES (@fileId, @size, @slices, @windows, @noncePrefix, @key, @rootHash, @name, @mediaType, @sharedBy, @sharedAtMs, @eventId)`),
      getDescriptor: db.prepare('SELECT * FROM descriptors WHERE file_id = ?'),
      listDescriptors: db.prepare('SELECT * FROM descriptors ORDER BY shared_at_ms, file_id'),
      putWanted: db.prepare(`INSERT OR REPLACE INTO wanted (file_id, priority, state, ttl_ms, requested_at_ms, updated_at_ms)
        VALUES (@fileId, @priority, @state, @ttlMs, @requestedAtMs, @updatedAtMs)`),
      getWanted: db.prepare('SELECT * FROM wanted WHERE file_id = ?'),
      listWanted: db.prepare('SELECT * FROM wanted ORDER BY priority DESC, requested_at_ms, file_id'),
      deleteWanted: db.prepare('DELETE FROM wanted WHERE file_id = ?'),
      putLocal: db.prepare(`INSERT OR REPLACE INTO local_files (file_id, have_slices, have_bytes, status, reason)
        VALUES (@fileId, @haveSlices, @haveBytes, @status, @reason)`),
      getLocal: db.prepare('SELECT * FROM local_files WHERE file_id = ?'),
      deleteLocal: db.prepare('DELETE FROM local_files WHERE file_id = ?'),
      putHave: db.prepare('INSERT OR REPLACE INTO slice_have (file_id, range_no, bits) VALUES (?, ?, ?)'),
      getHave: db.prepare('SELECT range_no, bits FROM slice_have WHERE file_id = ?'),
      deleteHave: db.prepare('DELETE FROM slice_have WHERE file_id = ?'),
      bumpPeer: db.prepare(`INSERT INTO peers (peer_pk, slices_accepted, slices_rejected, requests_answered, bad_windows, last_seen_ms)
        VALUES (@peerPk, @accepted, @rejected, @answered, @badWindows, @tMs)
        ON CONFLICT (peer_pk) DO UPDATE SET
          slices_accepted = slices_accepted + excluded.slices_accepted,
          slices_rejected = slices_rejected + excluded.slices_rejected,
          requests_answered = requests_answered + excluded.requests_answered,
          bad_windows = bad_windows + excluded.bad_windows,
          last_seen_ms = MAX(last_seen_ms, excluded.last_seen_ms)`),
      getPeer: db.prepare('SELECT * FROM peers WHERE peer_pk = ?'),
      badWindowPeers: db.prepare('SELECT peer_pk, bad_windows FROM peers WHERE bad_windows > 0'),
      putWindowHashes: db.prepare('INSERT OR REPLACE INTO window_hashes (file_id, hashes) VALUES (?, ?)'),
      getWindowHashes: db.prepare('SELECT hashes FROM window_hashes WHERE file_id = ?').pluck(),
      putSave: db.prepare('INSERT OR REPLACE INTO saves (file_id, path, overwrite, partial) VALUES (?, ?, ?, ?)'),
      deleteSave: db.prepare('DELETE FROM saves WHERE file_id = ? AND path = ?'),
      forgetFileEvents: db.prepare('DELETE FROM events WHERE file_id = ? AND type IN (?, ?)'),
      forgetDescriptor: db.prepare('DELETE FROM descriptors WHERE file_id = ?'),
      forgetSaves: db.prepare('DELETE FROM saves WHERE file_id = ?'),
      listSaves: db.prepare('SELECT * FROM saves ORDER BY file_id, path')
    }
  }

  static open (filePath: string): Store {
    return new Store(filePath)
  }

  private migrate (): void {
    const applied = Number(this.db.pragma('user_version', { simple: true }))
    if (applied > MIGRATIONS.length) throw new Error(`database schema version ${applied} is newer than this program (${MIGRATIONS.length})`)
    for (let v = applied; v < MIGRATIONS.length; v++) {
      this.db.transaction(() => {
        this.db.exec(MIGRATIONS[v]!)
        this.db.pragma(`user_version = ${v + 1}`)
      })()
    }
  }

  get schemaVersion (): number {
    return Number(this.db.pragma('user_version', { simple: true }))
  }

  transaction<T> (fn: () => T): T {
    return this.db.transaction(fn)()
  }

  /** Appends to the log; false when the event id is already there. `syncKey` null: never shared. */
  appendEvent (eventId: Uint8Array, type: number, fileId: Uint8Array | null, body: Uint8Array, tMs: number, syncKey: number | null = null): boolean {
    return this.stmt.appendEvent.run(eventId, type, fileId, syncKey, body, tMs).changes === 1
  }

  /** Shared events whose sync key is in `[from, to]`. */
  sharedEventsInRange (from: number, to: number): Array<{ eventId: Uint8Array, body: Uint8Array }> {
    return (this.stmt.sharedInRange.all(from, to) as Row[]).map(r => ({ eventId: u8(r.event_id), body: u8(r.body) }))
  }

  sharedEventCount (): number {
    return Number(this.stmt.sharedCount.get())
  }

  putMember (peerPk: Uint8Array, name: string, announcedAtMs: number): void { this.stmt.putMember.run(peerPk, name, announcedAtMs) }
  listMembers (): Array<{ peerPk: Uint8Array, name: string, announcedAtMs: number }> {
    return (this.stmt.listMembers.all() as Row[]).map(r => ({ peerPk: u8(r.peer_pk), name: String(r.name), announcedAtMs: Number(r.announced_at_ms) }))
  }

  /**
   * Records an announced address. Addresses announced later replace a member's earlier ones;
   * those announced at the same time stand side by side.
   */
  putAddress (peerPk: Uint8Array, host: string, port: number, announcedAtMs: number): void {
    this.stmt.dropOlderAddresses.run(peerPk, announcedAtMs)
    this.stmt.putAddress.run({ peerPk, host, port, at: announcedAtMs })
  }

  listAddresses (): Array<{ peerPk: Uint8Array, host: string, port: number }> {
    return (this.stmt.listAddresses.all() as Row[]).map(r => ({ peerPk: u8(r.peer_pk), host: String(r.host), port: Number(r.port) }))
  }

  /** A save that is to go on after a restart, until `deleteSave`. */
  putSave (fileId: Uint8Array, path: string, overwrite: boolean, partial: string): void { this.stmt.putSave.run(fileId, path, overwrite ? 1 : 0, partial) }
  deleteSave (fileId: Uint8Array, path: string): void { this.stmt.deleteSave.run(fileId, path) }
  listSaves (): Array<{ fileId: Uint8Array, path: string, overwrite: boolean, partial: string | null }> {
    return (this.stmt.listSaves.all() as Row[]).map(r => ({ fileId: u8(r.file_id), path: String(r.path), overwrite: r.overwrite === 1, partial: r.partial === null ? null : String(r.partial) }))
  }

  putMessage (eventId: Uint8Array, authorPk: Uint8Array, fileId: Uint8Array | null, text: string, createdAtMs: number): void {
    this.stmt.putMessage.run(eventId, authorPk, fileId, text, createdAtMs)
  }

  listMessages (): Array<{ eventId: Uint8Array, authorPk: Uint8Array, fileId: Uint8Array | null, text: string, createdAtMs: number }> {
    return (this.stmt.listMessages.all() as Row[]).map(r => ({
      eventId: u8(r.event_id), authorPk: u8(r.author_pk), fileId: r.file_id === null ? null : u8(r.file_id), text: String(r.text), createdAtMs: Number(r.created_at_ms)
    }))
  }

  hasEvent (eventId: Uint8Array): boolean {
    return this.stmt.hasEvent.get(eventId) !== undefined
  }

  getEvent (eventId: Uint8Array): Uint8Array | null {
    return (this.stmt.getEvent.get(eventId) as Uint8Array | undefined) ?? null
  }

  /** The log in order, read a page at a time so callers may write between pages. */
  * events (pageSize = 1000): IterableIterator<LoggedEvent> {
    let after = 0
    for (;;) {
      const rows = this.stmt.eventsAfter.all(after, pageSize) as Row[]
      for (const r of rows) yield { seq: Number(r.seq), type: Number(r.type), body: u8(r.body) }
      if (rows.length < pageSize) return
      after = Number(rows[rows.length - 1]!.seq)
    }
  }

  /** The newest logged event of `type` about `fileId`, or null. */
  lastEventAbout (fileId: Uint8Array, type: number): Uint8Array | null {
    return (this.stmt.lastWantType.get(fileId, type) as Uint8Array | undefined) ?? null
  }

  /**
   * Forgets a file altogether: its descriptor and want-control events (`types`) in the log,
   * its projections and saves. Messages about it stay. The caller removes its slice file.
   */
  forgetFile (fileId: Uint8Array, types: [number, number]): void {
    this.stmt.forgetFileEvents.run(fileId, ...types)
    this.stmt.forgetDescriptor.run(fileId)
    this.stmt.deleteWanted.run(fileId)
    this.stmt.deleteLocal.run(fileId)
    this.stmt.deleteHave.run(fileId)
    this.stmt.forgetSaves.run(fileId)
  }

  getMeta (key: string): number | null {
    const value = this.stmt.getMeta.get(key)
    return value === undefined ? null : Number(value)
  }

  setMeta (key: string, value: number): void {
    this.stmt.setMeta.run(key, value)
  }

  putDescriptor (row: DescriptorRow): void { this.stmt.putDescriptor.run(row) }
  getDescriptor (fileId: Uint8Array): DescriptorRow | null {
    const r = this.stmt.getDescriptor.get(fileId) as Row | undefined
    return r === undefined ? null : toDescriptor(r)
  }

  listDescriptors (): DescriptorRow[] { return (this.stmt.listDescriptors.all() as Row[]).map(toDescriptor) }

  putWanted (row: WantedRow): void { this.stmt.putWanted.run(row) }
  getWanted (fileId: Uint8Array): WantedRow | null {
    const r = this.stmt.getWanted.get(fileId) as Row | undefined
    return r === undefined ? null : toWanted(r)
  }

  /** Highest priority first, then oldest request. */
  listWanted (): WantedRow[] { return (this.stmt.listWanted.all() as Row[]).map(toWanted) }
  deleteWanted (fileId: Uint8Array): void { this.stmt.deleteWanted.run(fileId) }

  putLocal (row: LocalFileRow): void { this.stmt.putLocal.run(row) }
  getLocal (fileId: Uint8Array): LocalFileRow | null {
    const r = this.stmt.getLocal.get(fileId) as Row | undefined
    return r === undefined ? null : toLocal(r)
  }

  deleteLocal (fileId: Uint8Array): void { this.stmt.deleteLocal.run(fileId) }

  putHaveRange (fileId: Uint8Array, rangeNo: number, bits: Uint8Array): void { this.stmt.putHave.run(fileId, rangeNo, bits) }
  haveRanges (fileId: Uint8Array): Array<{ rangeNo: number, bits: Uint8Array }> {
    return (this.stmt.getHave.all(fileId) as Row[]).map(r => ({ rangeNo: Number(r.range_no), bits: u8(r.bits) }))
  }

  deleteHave (fileId: Uint8Array): void { this.stmt.deleteHave.run(fileId) }

  bumpPeer (peerPk: Uint8Array, delta: { accepted?: number, rejected?: number, answered?: number, badWindows?: number }, tMs: number): void {
    this.stmt.bumpPeer.run({ peerPk, accepted: delta.accepted ?? 0, rejected: delta.rejected ?? 0, answered: delta.answered ?? 0, badWindows: delta.badWindows ?? 0, tMs })
  }

  /** Peers that supplied windows that failed their hash, with how many. */
  badWindowPeers (): Array<{ peerPk: Uint8Array, badWindows: number }> {
    return (this.stmt.badWindowPeers.all() as Row[]).map(r => ({ peerPk: u8(r.peer_pk), badWindows: Number(r.bad_windows) }))
  }

  /** A file's window hashes, once checked against its root (or computed by its sharer). */
  putWindowHashes (fileId: Uint8Array, hashes: Uint8Array): void { this.stmt.putWindowHashes.run(fileId, hashes) }
  getWindowHashes (fileId: Uint8Array): Uint8Array | null {
    const hashes = this.stmt.getWindowHashes.get(fileId) as Uint8Array | undefined
    return hashes === undefined ? null : u8(hashes)
  }

  getPeer (peerPk: Uint8Array): PeerRow | null {
    const r = this.stmt.getPeer.get(peerPk) as Row | undefined
    if (r === undefined) return null
    return {
      peerPk: u8(r.peer_pk), slicesAccepted: Number(r.slices_accepted), slicesRejected: Number(r.slices_rejected),
      requestsAnswered: Number(r.requests_answered), badWindows: Number(r.bad_windows), lastSeenMs: Number(r.last_seen_ms)
    }
  }

  /** Empties every projection table (reprojection then refills them). */
  clearProjections (): void {
    for (const table of PROJECTION_TABLES) this.db.exec(`DELETE FROM ${table}`)
  }

  /** Every projection row, in a stable order, as plain JSON-able values: for comparing states. */
  dumpProjections (): Record<string, unknown[]> {
    const out: Record<string, unknown[]> = {}
    for (const table of PROJECTION_TABLES) {
      const rows = this.db.prepare(`SELECT * FROM ${table}`).all() as Row[]
      out[table] = rows
        .map(r => Object.fromEntries(Object.entries(r).map(([k, v]) => [k, v instanceof Uint8Array ? Buffer.from(v).toString('hex') : v])))
        .sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b)))
    }
    return out
  }

  close (): void {
    this.db.close()
  }
}
