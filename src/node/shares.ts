import fs from 'node:fs'
import path from 'node:path'
import { SliceFileWriter } from '../store/slice-file.js'
import { LocalFile, sliceFilePath } from './local-file.js'
import { QuietError } from './errors.js'
import { applyShared, openSharedEvent, sharedEventId, sharedFileId, syncKeyOf } from './projections.js'
import { RECORDS_PER_BATCH, SliceEncryptor } from '../files/encrypt.js'
import { WindowHasher, fileIdOf, rootHashOf } from '../files/hashing.js'
import { mediaTypeFor } from '../files/media-type.js'
import { randomBytes, AEAD_KEY_BYTES } from '../crypto/index.js'
import { toHex } from '../bytes.js'
import {
  EventType, HeaderOffset, NONCE_PREFIX_BYTES, MAX_NAME_BYTES, SLICE_RECORD_BYTES, truncateUtf8,
  encodeDescriptorPlaintext, sealContentPayload, encodePeerPlaintext, encodeAddressPlaintext, encodeMessagePlaintext
} from '../wire/index.js'
import type { NodeContext } from './context.js'

export interface SharedFile {
  fileId: string
  name: string
  size: number
  mediaType: string
}

/** The window hashes of records already written (the source's size was not known beforehand). */
function hashWritten (writer: SliceFileWriter, slices: number): Uint8Array {
  const hasher = new WindowHasher(slices)
  writer.readBack(RECORDS_PER_BATCH * SLICE_RECORD_BYTES, records => hasher.update(records))
  return hasher.hashes
}

/** The public parts of a file's descriptor: who shared it and when, its root hash and windows (never its key). */
export interface DescriptorInfo { sharedBy: string, sharedAtMs: number, rootHash: string, windows: number }

/** How the slice file of a share still being written is named. */
const UNFINISHED_SHARE_SUFFIX = '.tmp'
const UNFINISHED_SHARE = /^share-[0-9a-f]{16}\.tmp$/

/**
 * What this node puts into the network and takes from it as shared events: files it shares
 * (sliced, encrypted and stored in one pass, then announced by descriptor), its name and
 * addresses, messages; and shared events from peers, verified and projected.
 */
export class Shares {
  constructor (private readonly ctx: NodeContext) {
    this.removeUnfinished()
  }

  /** Slices, encrypts and stores a file from disk, then announces its descriptor. */
  async share (filePath: string, options: { name?: string, mediaType?: string, message?: string } = {}): Promise<SharedFile> {
    let fd: number
    try {
      fd = fs.openSync(filePath, 'r')
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code
      if (code === 'ENOENT' || code === 'ENOTDIR') throw new QuietError('not_found', `no such file: ${filePath}`)
      if (code === 'EACCES' || code === 'EPERM') throw new QuietError('permission_denied', `permission denied: ${filePath}`)
      throw new QuietError('invalid_argument', `cannot read ${filePath}: ${(err as Error).message}`)
    }
    if (!fs.fstatSync(fd).isFile()) {
      fs.closeSync(fd)
      throw new QuietError('invalid_argument', `not a regular file: ${filePath}`)
    }
    const size = fs.fstatSync(fd).size
    const name = options.name ?? path.basename(filePath)
    return await this.shareStream(fs.createReadStream(filePath, { fd, highWaterMark: 1 << 20 }), { ...options, name, size, mediaType: options.mediaType ?? mediaTypeFor(name) })
  }

  /** Same as `share`, from any byte stream (an upload, a pipe). Memory stays constant. */
  async shareStream (source: AsyncIterable<Uint8Array>, options: { name: string, mediaType?: string, message?: string, size?: number }): Promise<SharedFile> {
    const { ctx } = this
    const name = truncateUtf8(options.name, MAX_NAME_BYTES)
    const mediaType = options.mediaType ?? mediaTypeFor(name)
    const key = randomBytes(AEAD_KEY_BYTES)
    const noncePrefix = randomBytes(NONCE_PREFIX_BYTES)
    const writer = new SliceFileWriter(path.join(ctx.dataDir, 'slices', `share-${toHex(randomBytes(8))}${UNFINISHED_SHARE_SUFFIX}`))
    let descriptor
    let windowHashes: Uint8Array
    try {
      // With the size known beforehand the windows are hashed in the same pass.
      const encryptor = new SliceEncryptor(key, noncePrefix, (_first, records) => writer.append(records), options.size)
      for await (const chunk of source) encryptor.push(chunk)
      const result = encryptor.finish()
      windowHashes = result.windowHashes ?? hashWritten(writer, result.slices)
      const rootHash = rootHashOf(result.size, windowHashes)
      const fileId = fileIdOf({ sharerPk: ctx.identity.publicKey, size: result.size, noncePrefix, key, rootHash, name, mediaType })
      writer.commit(sliceFilePath(ctx.dataDir, fileId))
      descriptor = { fileId, size: result.size, noncePrefix, key, rootHash, name, mediaType }
    } catch (err) {
      writer.abort()
      throw err
    }
    const eventBytes = this.signContent(EventType.attachmentDescriptor, encodeDescriptorPlaintext(descriptor))
    ctx.store.transaction(() => {
      this.ingest(eventBytes)
      ctx.store.putWindowHashes(descriptor.fileId, windowHashes)
      const local = LocalFile.adoptComplete(ctx.dataDir, ctx.store.getDescriptor(descriptor.fileId)!, windowHashes)
      local.persist(ctx.store)
      ctx.files.replace(local)
    })
    this.broadcast(eventBytes)
    if (options.message !== undefined) this.postMessage(options.message, toHex(descriptor.fileId))
    return { fileId: toHex(descriptor.fileId), name, size: descriptor.size, mediaType }
  }

  /** Announces this member's display name and the addresses peers should use (none: keep the last ones). */
  announce (name: string, addresses: Array<{ host: string, port: number }> = []): void {
    this.broadcast(this.publishOwn(this.signContent(EventType.peer, encodePeerPlaintext(name))))
    // One event per address, all signed at this same time: together they replace the earlier ones.
    for (const address of addresses) this.broadcast(this.publishOwn(this.signContent(EventType.address, encodeAddressPlaintext(address))))
  }

  /** Posts a short text into the network, optionally about a file. */
  postMessage (text: string, fileId?: string): void {
    const fileIdBytes = fileId === undefined ? null : this.ctx.files.descriptor(fileId).fileId
    this.broadcast(this.publishOwn(this.signContent(EventType.message, encodeMessagePlaintext({ fileId: fileIdBytes, text }))))
  }

  /**
   * Takes a shared event (descriptor, peer, address, message) from anywhere: a peer, sync,
   * a test. It must verify and decrypt with the network key, or WireError is thrown.
   * Returns false when it was already known.
   */
  ingest (bytes: Uint8Array): boolean {
    const { store } = this.ctx
    const shared = openSharedEvent(bytes, this.ctx.networkKey)
    const eventId = sharedEventId(shared)
    if (store.hasEvent(eventId)) return false
    store.transaction(() => {
      store.appendEvent(eventId, bytes[HeaderOffset.type]!, sharedFileId(shared), bytes, Math.floor(this.ctx.now()), syncKeyOf(eventId))
      applyShared(store, shared)
      this.ctx.signer.save()
    })
    return true
  }

  /** The members known in the network, this node included once it announced itself. */
  members (): Array<{ publicKey: string, name: string }> {
    return this.ctx.store.listMembers().map(m => ({ publicKey: toHex(m.peerPk), name: m.name }))
  }

  /** The newest announced addresses of every member. */
  addresses (): Array<{ publicKey: string, host: string, port: number }> {
    return this.ctx.store.listAddresses().map(a => ({ publicKey: toHex(a.peerPk), host: a.host, port: a.port }))
  }

  messages (): Array<{ author: string, fileId: string | null, text: string, createdAtMs: number }> {
    return this.ctx.store.listMessages().map(m => ({ author: toHex(m.authorPk), fileId: m.fileId === null ? null : toHex(m.fileId), text: m.text, createdAtMs: m.createdAtMs }))
  }

  /** The public parts of a file's descriptor: who shared it and when, its root hash and windows (never its key). */
  descriptorInfo (fileId: string): DescriptorInfo {
    const d = this.ctx.files.descriptor(fileId)
    return { sharedBy: toHex(d.sharedBy), sharedAtMs: d.sharedAtMs, rootHash: toHex(d.rootHash), windows: d.windows }
  }

  /** The signed descriptor event this node holds for a file (what peers are sent). */
  descriptorEvent (fileId: string): Uint8Array {
    const descriptor = this.ctx.files.descriptor(fileId)
    const event = this.ctx.store.getEvent(descriptor.eventId)
    if (event === null) throw new QuietError('corrupt', `descriptor event of ${fileId} is missing from the log`)
    return event
  }

  private signContent (type: number, plaintext: Uint8Array): Uint8Array {
    const header = this.ctx.signer.header(type, 0)
    return this.ctx.signer.sign(type, sealContentPayload(header, plaintext, this.ctx.networkKey), header)
  }

  private publishOwn (eventBytes: Uint8Array): Uint8Array {
    this.ingest(eventBytes)
    return eventBytes
  }

  private broadcast (eventBytes: Uint8Array): void {
    for (const peer of this.ctx.peers()) this.ctx.send(peer, eventBytes)
  }

  /** A share cut off (the process killed) leaves its half-written slice file: nothing refers to it. */
  private removeUnfinished (): void {
    const dir = path.join(this.ctx.dataDir, 'slices')
    let names: string[]
    try {
      names = fs.readdirSync(dir)
    } catch {
      return
    }
    for (const name of names) if (UNFINISHED_SHARE.test(name)) fs.rmSync(path.join(dir, name), { force: true })
  }
}
