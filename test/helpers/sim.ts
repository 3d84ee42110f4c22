import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import crypto from 'node:crypto'
import { Node } from '../../src/node/node.js'
import { SimNetwork } from '../../src/net/sim-network.js'
import { randomBytes, signKeyPair } from '../../src/crypto/index.js'
import { PARTIAL_SUFFIX } from '../../src/node/save-target.js'
import type { LinkOptions } from '../../src/net/sim-network.js'
import type { NodeOptions, RequestOptions } from '../../src/node/node.js'

export interface SimPeer {
  name: string
  node: Node
  dir: string
}

export interface Cluster {
  net: SimNetwork
  peers: SimPeer[]
  root: string
  networkKey: Uint8Array
  /** Opens (or reopens) a node named `name` and joins it to the simulated network. */
  addPeer (name: string, options?: Partial<NodeOptions>): SimPeer
  close (): void
}

/** Nodes in one process, each with its own data directory, fully linked with `link`. */
export function makeCluster (names: string[], link: Partial<LinkOptions> = {}, seed = 1, options: Partial<NodeOptions> = {}): Cluster {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'qf-test-'))
  const net = new SimNetwork(seed)
  const networkKey = randomBytes(32)
  const identities = new Map<string, ReturnType<typeof signKeyPair>>()
  const peers: SimPeer[] = []
  const cluster: Cluster = {
    net,
    peers,
    root,
    networkKey,
    addPeer (name, extra = {}) {
      const identity = identities.get(name) ?? signKeyPair()
      identities.set(name, identity)
      const dir = path.join(root, name)
      const node = Node.open({ dataDir: dir, identity, networkKey, startMs: net.now, ...options, ...extra })
      node.attach(net.add(node.publicKey, node))
      for (const other of peers) if (other.node !== node) net.link(node.publicKey, other.node.publicKey, link)
      const peer = { name, node, dir }
      peers.push(peer)
      return peer
    },
    close () {
      for (const p of peers) p.node.close()
      fs.rmSync(root, { recursive: true, force: true })
    }
  }
  for (const name of names) cluster.addPeer(name)
  return cluster
}

/**
 * The cluster's first peer shares a generated file; once its descriptor has travelled, the
 * second peer asks for it.
 */
export async function shareAndRequest (c: Cluster, name: string, size: number, seed: number, request: RequestOptions = {}): Promise<{ alice: SimPeer, bob: SimPeer, source: string, fileId: string }> {
  const [alice, bob] = c.peers as [SimPeer, SimPeer]
  const source = makeFile(c.root, name, size, seed)
  const { fileId } = await alice.node.share(source)
  c.net.step(20)
  bob.node.requestFile(fileId, request)
  return { alice, bob, source, fileId }
}

/** A file of `size` bytes with reproducible contents. */
export function makeFile (dir: string, name: string, size: number, seed = 1): string {
  const filePath = path.join(dir, name)
  fs.mkdirSync(dir, { recursive: true })
  const fd = fs.openSync(filePath, 'w')
  const chunk = Buffer.alloc(1 << 20)
  let state = seed >>> 0
  for (let written = 0; written < size;) {
    for (let i = 0; i < chunk.length; i += 4) {
      state = (Math.imul(state, 1664525) + 1013904223) >>> 0
      chunk.writeUInt32LE(state, i)
    }
    const n = Math.min(chunk.length, size - written)
    fs.writeSync(fd, chunk, 0, n)
    written += n
  }
  fs.closeSync(fd)
  return filePath
}

export async function sha256OfStream (stream: AsyncIterable<Uint8Array>): Promise<string> {
  const hash = crypto.createHash('sha256')
  for await (const chunk of stream) hash.update(chunk)
  return hash.digest('hex')
}

export async function sha256OfFile (filePath: string): Promise<string> {
  return await sha256OfStream(fs.createReadStream(filePath))
}

/** The partial files a save to `target` left beside it (they have random names). */
export function partialsOf (target: string): string[] {
  const prefix = `.${path.basename(target)}.`
  return fs.readdirSync(path.dirname(target)).filter(n => n.startsWith(prefix) && n.endsWith(PARTIAL_SUFFIX)).map(n => path.join(path.dirname(target), n))
}
