/**
 * The raw UDP baseline's receiving side: counts datagrams on a port until none came for a
 * second, then prints {"received", "bytes", "seconds"} (first to last arrival).
 *   node dist/bench/udp-raw-receiver.js
 * prints {"port": N} first, so the sender knows where to aim.
 */
import dgram from 'node:dgram'
import { performance } from 'node:perf_hooks'
import { SOCKET_BUFFER_BYTES } from '../src/net/udp.js'

const socket = dgram.createSocket({ type: 'udp4', recvBufferSize: SOCKET_BUFFER_BYTES })
let received = 0
let bytes = 0
let first = 0
let last = 0
let idle: NodeJS.Timeout | null = null
socket.on('message', (msg) => {
  if (received === 0) first = performance.now()
  received++
  bytes += msg.length
  last = performance.now()
  if (idle !== null) clearTimeout(idle)
  idle = setTimeout(() => {
    process.stdout.write(JSON.stringify({ received, bytes, seconds: (last - first) / 1000 }) + '\n')
    socket.close()
  }, 1000)
})
socket.bind(0, '127.0.0.1', () => process.stdout.write(JSON.stringify({ port: socket.address().port }) + '\n'))
