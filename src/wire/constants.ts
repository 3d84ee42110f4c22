/** Every event on the wire and in the log is exactly this long. */
export const EVENT_BYTES = 512
/** The only protocol version this code speaks. */
export const PROTOCOL_VERSION = 1

/** Event type bytes. Values are part of the protocol: never renumber. */
export const EventType = {
  peer: 0x01,
  address: 0x02,
  slice: 0x03,
  message: 0x04,
  attachmentDescriptor: 0x05,
  sync: 0x07,
  syncFile: 0x0a,
  syncFileReply: 0x0b,
  /** Asks a peer for a run of a file's window hashes (unsigned: the hashes check themselves). */
  windowHashesRequest: 0x0c,
  /** A run of a file's window hashes (unsigned: checked against the descriptor's root hash). */
  windowHashes: 0x0d,
  /** Local-only: a user's decision about a wanted file (request, pause, …). Never sent. */
  wantControl: 0x40
} as const
export type EventTypeName = keyof typeof EventType
export type EventTypeByte = typeof EventType[EventTypeName]

const KNOWN_TYPES = new Set<number>(Object.values(EventType))
export function isKnownEventType (type: number): type is EventTypeByte {
  return KNOWN_TYPES.has(type)
}

/** Events that carry network content and travel by ordinary sync. */
export const SHAREABLE_TYPES: ReadonlySet<number> = new Set([EventType.peer, EventType.address, EventType.message, EventType.attachmentDescriptor])
