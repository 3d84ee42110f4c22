import net from 'node:net'

/**
 * A bulk TCP flow, the anchor beside qf on a shaped link.
 *   receive HOST PORT SECONDS: accept one connection, print the bytes received in each second, exit.
 *   send HOST PORT SECONDS: connect and write as fast as the connection takes it, for SECONDS.
 */
const [mode, host, portText, secondsText] = process.argv.slice(2)
const port = Number(portText)
const seconds = Number(secondsText)

if (mode === 'receive') {
  const server = net.createServer(socket => {
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
  const socket = net.connect(port, host)
  socket.on('error', () => process.exit(0))
  const write = (): void => { while (socket.write(chunk)) { /* until the buffer is full */ } }
  socket.on('connect', write)
  socket.on('drain', write)
  setTimeout(() => process.exit(0), seconds * 1000)
} else {
  process.stderr.write('usage: tcp-flow receive|send HOST PORT SECONDS\n')
  process.exit(2)
}
