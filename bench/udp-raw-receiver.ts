/**
 * The raw UDP baseline's receiving side: counts datagrams on a port until none came for a
 * second, then prints {"received", "bytes", "seconds", "failures"} (first to last arrival).
 *   node dist/bench/udp-raw-receiver.js [crypto]
 * prints {"port": N} first, so the sender knows where to aim. With `crypto`, each datagram
 * also gets the work the protocol requires of a receiver (see required-receive-work.ts).
 */
import dgram from 'node:dgram'
import { performance } from 'node:perf_hooks'
import { SOCKET_BUFFER_BYTES } from '../src/net/udp.js'
import { RequiredReceiveWork } from './required-receive-work.js'

const work = process.argv[2] === 'crypto' ? new RequiredReceiveWork() : null
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
  work?.onDatagram(msg)
  last = performance.now()
  if (idle !== null) clearTimeout(idle)
  idle = setTimeout(() => {
    work?.hashBatch()
    process.stdout.write(JSON.stringify({ received, bytes, seconds: (last - first) / 1000, failures: work?.failures ?? 0 }) + '\n')
    socket.close()
  }, 1000)
})
socket.bind(0, '127.0.0.1', () => process.stdout.write(JSON.stringify({ port: socket.address().port }) + '\n'))
