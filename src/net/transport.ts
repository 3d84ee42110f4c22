/**
 * What a node needs from a network: who it can reach and a way to send one 512-byte event.
 * The transport authenticates peers (the simulated network by construction, UDP by the
 * transit layer) and hands incoming events to `Node.receive(peer, event, tMs)`.
 * Peer ids are the peers' Ed25519 public keys in hex.
 */
export interface Transport {
  peers (): readonly string[]
  /** Hands over `event`: the caller does not modify it afterwards. */
  send (peer: string, event: Uint8Array): void
  /**
   * Which connection to `peer` an event sent now would take (an answer, the one its question
   * came by). It changes when the peer restarts: what was queued for the old one is not sent.
   */
  session (peer: string): unknown
  /** How many events one datagram carries (from the MTU); a paced sender releases that many at a time. Absent: 2. */
  readonly eventsPerDatagram?: number
}
