/**
 * Schema migrations, applied in order from an empty database. `user_version` records how
 * many have run. Never edit a shipped migration: add a new one.
 */
export const MIGRATIONS: readonly string[] = [
  `
  -- The event log: every valid signed event this node holds, in arrival order.
  -- Slice events are logged in their slice files instead (see docs/architecture.md).
  -- sync_key: first 4 bytes of hash32(event_id) as an integer, set for events shared by
  -- ordinary sync (NULL for local-only events); a window is a range of it.
  CREATE TABLE events (
    seq INTEGER PRIMARY KEY,
    event_id BLOB NOT NULL UNIQUE,
    type INTEGER NOT NULL,
    file_id BLOB,
    sync_key INTEGER,
    body BLOB NOT NULL,
    received_at_ms INTEGER NOT NULL
  );
  CREATE INDEX events_by_file ON events (file_id, seq);
  CREATE INDEX events_by_sync_key ON events (sync_key) WHERE sync_key IS NOT NULL;

  -- Projections: rebuilt from the event log and the slice files by reprojection.
  CREATE TABLE descriptors (
    file_id BLOB PRIMARY KEY,
    size INTEGER NOT NULL,
    slices INTEGER NOT NULL,
    windows INTEGER NOT NULL,
    nonce_prefix BLOB NOT NULL,
    file_key BLOB NOT NULL,
    root_hash BLOB NOT NULL,
    name TEXT NOT NULL,
    media_type TEXT NOT NULL,
    shared_by BLOB NOT NULL,
    shared_at_ms INTEGER NOT NULL,
    event_id BLOB NOT NULL
  ) WITHOUT ROWID;

  CREATE TABLE wanted (
    file_id BLOB PRIMARY KEY,
    priority INTEGER NOT NULL CHECK (priority BETWEEN 1 AND 10),
    state TEXT NOT NULL CHECK (state IN ('wanted', 'paused', 'expired')),
    ttl_ms INTEGER NOT NULL,
    requested_at_ms INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL
  ) WITHOUT ROWID;

  CREATE TABLE local_files (
    file_id BLOB PRIMARY KEY,
    have_slices INTEGER NOT NULL,
    have_bytes INTEGER NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('partial', 'complete', 'failed')),
    reason TEXT
  ) WITHOUT ROWID;

  -- Which slices are durably stored: one bitmap per request range (bit k = slice start+k).
  CREATE TABLE slice_have (
    file_id BLOB NOT NULL,
    range_no INTEGER NOT NULL,
    bits BLOB NOT NULL,
    PRIMARY KEY (file_id, range_no)
  ) WITHOUT ROWID;

  CREATE TABLE members (
    peer_pk BLOB PRIMARY KEY,
    name TEXT NOT NULL,
    announced_at_ms INTEGER NOT NULL
  ) WITHOUT ROWID;

  CREATE TABLE addresses (
    peer_pk BLOB PRIMARY KEY,
    host TEXT NOT NULL,
    port INTEGER NOT NULL,
    announced_at_ms INTEGER NOT NULL
  ) WITHOUT ROWID;

  CREATE TABLE messages (
    event_id BLOB PRIMARY KEY,
    author_pk BLOB NOT NULL,
    file_id BLOB,
    text TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL
  ) WITHOUT ROWID;

  -- Per-peer sync state: counters, not a projection.
  CREATE TABLE peers (
    peer_pk BLOB PRIMARY KEY,
    slices_accepted INTEGER NOT NULL DEFAULT 0,
    slices_rejected INTEGER NOT NULL DEFAULT 0,
    requests_answered INTEGER NOT NULL DEFAULT 0,
    last_seen_ms INTEGER NOT NULL DEFAULT 0
  ) WITHOUT ROWID;

  CREATE TABLE meta (
    key TEXT PRIMARY KEY,
    value INTEGER NOT NULL
  ) WITHOUT ROWID;
  `,
  `
  -- A member may announce several addresses at once (LAN, forwarded port, relay): the
  -- addresses announced last, all with the same time, are the member's current ones.
  CREATE TABLE addresses_by_host (
    peer_pk BLOB NOT NULL,
    host TEXT NOT NULL,
    port INTEGER NOT NULL,
    announced_at_ms INTEGER NOT NULL,
    PRIMARY KEY (peer_pk, host, port)
  ) WITHOUT ROWID;
  INSERT INTO addresses_by_host SELECT peer_pk, host, port, announced_at_ms FROM addresses;
  DROP TABLE addresses;
  ALTER TABLE addresses_by_host RENAME TO addresses;
  `,
  `
  -- Saves asked for and not ended yet: a node that restarts takes them up again.
  -- Local state, like peers: not a projection.
  CREATE TABLE saves (
    file_id BLOB NOT NULL,
    path TEXT NOT NULL,
    overwrite INTEGER NOT NULL,
    PRIMARY KEY (file_id, path)
  ) WITHOUT ROWID;
  `,
  `
  -- The partial file a save fills has a random name: it is recorded so a restart can remove it.
  ALTER TABLE saves ADD COLUMN partial TEXT;
  `,
  `
  -- Verified windows: a file's window hashes (W × 32 bytes), kept once checked against its
  -- root hash (or computed by its sharer). Local state, not a projection: they are fixed by
  -- the file id, and fetching them again costs a round trip.
  CREATE TABLE window_hashes (
    file_id BLOB PRIMARY KEY,
    hashes BLOB NOT NULL
  ) WITHOUT ROWID;
  -- Windows a peer supplied that failed their hash.
  ALTER TABLE peers ADD COLUMN bad_windows INTEGER NOT NULL DEFAULT 0;
  `
]

/** Tables reprojection drops and rebuilds. */
export const PROJECTION_TABLES = ['descriptors', 'wanted', 'local_files', 'slice_have', 'members', 'addresses', 'messages'] as const
