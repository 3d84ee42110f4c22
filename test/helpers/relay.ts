import dgram from 'node:dgram'
import { SOCKET_BUFFER_BYTES } from '../../src/net/udp.js'

export interface LossyRelay {
  /** Where to send to reach the target through the relay (announce it as 127.0.0.1:port). */
  port: number
  forwarded: number
  dropped: number
  close: () => Promise<void>
}

/**
 * A UDP relay on loopback in front of one daemon, for one peer at a time: what reaches its
 * port goes on to the target from a socket of its own, and what the target sends back there
 * goes to whoever sent last. Each datagram, either way, is dropped with probability `loss`
 * (a seeded generator, so a run can be repeated).
 */
export async function startLossyRelay (targetPort: number, loss: number, seed: number): Promise<LossyRelay> {
  // Buffers as large as the daemons' own: the relay itself must not be where datagrams are lost.
  const front = dgram.createSocket({ type: 'udp4', recvBufferSize: SOCKET_BUFFER_BYTES, sendBufferSize: SOCKET_BUFFER_BYTES })
  const back = dgram.createSocket({ type: 'udp4', recvBufferSize: SOCKET_BUFFER_BYTES, sendBufferSize: SOCKET_BUFFER_BYTES })
  await Promise.all([front, back].map(async socket => await new Promise<void>(resolve => socket.bind(0, '127.0.0.1', resolve))))
  let state = seed >>> 0
  const drop = (): boolean => {
    // xorshift32: enough to spread the drops, and the same for the same seed.
    state ^= state << 13; state >>>= 0
    state ^= state >>> 17
    state ^= state << 5; state >>>= 0
    return state / 2 ** 32 < loss
  }
  let client: { address: string, port: number } | null = null
  const relay: LossyRelay = {
    port: front.address().port,
    forwarded: 0,
    dropped: 0,
    close: async () => { await Promise.all([front, back].map(async socket => await new Promise<void>(resolve => socket.close(() => resolve())))) }
  }
  const pass = (socket: dgram.Socket, bytes: Buffer, port: number): void => {
    if (drop()) { relay.dropped++; return }
    relay.forwarded++
    socket.send(bytes, port, '127.0.0.1')
  }
  front.on('message', (bytes, from) => { client = from; pass(back, bytes, targetPort) })
  back.on('message', bytes => { if (client !== null) pass(front, bytes, client.port) })
  return relay
}
