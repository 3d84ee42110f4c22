import net from 'node:net'

/**
 * A bulk TCP flow, the anchor beside qf on a shaped link.
 *   receive HOST PORT SECONDS: accept one connection, print the bytes received in each second, exit.
 *   send HOST PORT SECONDS: connect and write as fast as the connection takes it, for SECONDS.
 */
const [mode, host, portText, secondsText] = process.argv.slice(2)
const port = Number(portText)
const seconds = Number(secondsText)

/**
 * The sender starts a moment after the receiver, and on a busy machine before it listens: it
 * tries again for this long. The receiver gives up as long after it began without one.
 */
const CONNECT_WITHIN_MS = 10_000

if (mode === 'receive') {
  const noSender = setTimeout(() => {
    process.stderr.write(`tcp-flow: no sender connected within ${CONNECT_WITHIN_MS} ms\n`)
    process.exit(1)
  }, CONNECT_WITHIN_MS)
  const server = net.createServer(socket => {
    clearTimeout(noSender)
    let bytes = 0
    let ticks = 0
    socket.on('data', (chunk: Buffer) => { bytes += chunk.length })
    socket.on('error', () => {})
    const timer = setInterval(() => {
      process.stdout.write(`${bytes}\n`)
      bytes = 0
      if (++ticks >= seconds) { clearInterval(timer); socket.destroy(); server.close() }
    }, 1000)
  })
  server.listen(port, host)
} else if (mode === 'send') {
  const chunk = Buffer.alloc(64 * 1024, 7)
  const giveUpAt = Date.now() + CONNECT_WITHIN_MS
  const connect = (): void => {
    const socket = net.connect(port, host)
    let connected = false
    const write = (): void => { while (socket.write(chunk)) { /* until the buffer is full */ } }
    socket.on('connect', () => {
      connected = true
      setTimeout(() => process.exit(0), seconds * 1000)
      write()
    })
    socket.on('drain', write)
    // Refused before the receiver listens: again, a little later. Once connected, the
    // receiver closing is the end.
    socket.on('error', () => {
      if (connected || Date.now() > giveUpAt) process.exit(0)
      setTimeout(connect, 100)
    })
  }
  connect()
} else {
  process.stderr.write('usage: tcp-flow receive|send HOST PORT SECONDS\n')
  process.exit(2)
}
