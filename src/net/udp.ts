import dgram from 'node:dgram'
import dns from 'node:dns'
import net from 'node:net'
import type { PeerAddress } from './transit.js'

/** Socket buffers large enough for a burst of a few thousand datagrams. */
export const SOCKET_BUFFER_BYTES = 4 * 1024 * 1024

export interface UdpSocket {
  port: number
  send (bytes: Uint8Array, to: PeerAddress): void
  close (): Promise<void>
}

/** Binds a UDP socket (port 0: any free port) and hands every datagram to `onDatagram`. */
export async function openUdpSocket (port: number, onDatagram: (bytes: Uint8Array, from: PeerAddress) => void, host = '0.0.0.0'): Promise<UdpSocket> {
  const socket = dgram.createSocket({ type: 'udp4', recvBufferSize: SOCKET_BUFFER_BYTES, sendBufferSize: SOCKET_BUFFER_BYTES, lookup: lookupLiteralsAtOnce })
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject)
    socket.bind(port, host, () => { socket.off('error', reject); resolve() })
  })
  // A send to an unreachable peer reports an error here; the transit layer retries on its own.
  socket.on('error', () => {})
  socket.on('message', (msg, rinfo) => onDatagram(msg, { host: rinfo.address, port: rinfo.port }))
  return {
    port: socket.address().port,
    send (bytes, to) { socket.send(bytes, to.port, to.host) },
    close: async () => await new Promise<void>(resolve => socket.close(() => resolve()))
  }
}

/**
 * The resolver dgram calls before every send: peers are addressed by IP literals, which are
 * answered at once instead of through dns.lookup and a deferred callback per datagram.
 */
function lookupLiteralsAtOnce (hostname: string, options: dns.LookupOneOptions, callback: (err: NodeJS.ErrnoException | null, address: string, family: number) => void): void {
  if (net.isIPv4(hostname)) callback(null, hostname, 4)
  else dns.lookup(hostname, options, callback)
}
