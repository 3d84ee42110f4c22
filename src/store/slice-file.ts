import fs from 'node:fs'
import path from 'node:path'
import { SLICE_RECORD_BYTES } from '../wire/slice.js'

/**
 * One file's slice records, `n × 466` bytes, record i at offset `466·i`.
 * A sparse preallocated file: sequential reads in slice order, writes in place.
 * Presence is never inferred from this file; the have-bitmap in SQLite says which records
 * are real, and it is only updated after `sync()` returned.
 */
export class SliceFile {
  private constructor (readonly filePath: string, private fd: number, readonly slices: number) {}

  /** Opens (creating and sizing if needed) the slice file of a file with `slices` records. */
  static open (filePath: string, slices: number): SliceFile {
    fs.mkdirSync(path.dirname(filePath), { recursive: true })
    const fd = fs.openSync(filePath, fs.constants.O_RDWR | fs.constants.O_CREAT, 0o600)
    const expected = slices * SLICE_RECORD_BYTES
    if (fs.fstatSync(fd).size !== expected) fs.ftruncateSync(fd, expected)
    return new SliceFile(filePath, fd, slices)
  }

  /** Writes `records` (a whole number of records) starting at slice `firstSlice`. */
  write (firstSlice: number, records: Uint8Array): void {
    if (records.length % SLICE_RECORD_BYTES !== 0) throw new RangeError('partial slice record')
    if (firstSlice + records.length / SLICE_RECORD_BYTES > this.slices) throw new RangeError('write past the last slice')
    let written = 0
    while (written < records.length) {
      written += fs.writeSync(this.fd, records, written, records.length - written, firstSlice * SLICE_RECORD_BYTES + written)
    }
  }

  /** Reads `count` records from `firstSlice` into `into` (which must hold them). */
  read (firstSlice: number, count: number, into: Uint8Array): Uint8Array {
    const length = count * SLICE_RECORD_BYTES
    if (firstSlice + count > this.slices) throw new RangeError('read past the last slice')
    let done = 0
    while (done < length) {
      const n = fs.readSync(this.fd, into, done, length - done, firstSlice * SLICE_RECORD_BYTES + done)
      if (n === 0) throw new Error(`slice file ${this.filePath} is shorter than expected`)
      done += n
    }
    return into.subarray(0, length)
  }

  /** Makes every write so far durable. */
  sync (): void {
    fs.fdatasyncSync(this.fd)
  }

  /** Makes every write so far durable on the thread pool; `done` gets null once they are. */
  syncInBackground (done: (err: Error | null) => void): void {
    if (this.fd < 0) { done(new Error(`slice file ${this.filePath} is closed`)); return }
    fs.fdatasync(this.fd, done)
  }

  close (): void {
    if (this.fd >= 0) fs.closeSync(this.fd)
    this.fd = -1
  }

  /** Closes and removes the file. */
  destroy (): void {
    this.close()
    fs.rmSync(this.filePath, { force: true })
  }
}

/**
 * Writes a new slice file front to back under a temporary name, then moves it into place
 * once it is complete and durable: a half-written share never looks like a stored file.
 */
export class SliceFileWriter {
  private fd: number
  private position = 0
  private readDescriptor: number | null = null

  constructor (private readonly tempPath: string) {
    fs.mkdirSync(path.dirname(tempPath), { recursive: true })
    this.fd = fs.openSync(tempPath, 'w', 0o600)
  }

  append (records: Uint8Array): void {
    let written = 0
    while (written < records.length) {
      written += fs.writeSync(this.fd, records, written, records.length - written, this.position + written)
    }
    this.position += records.length
  }

  /** Reads back what was written so far, front to back, `chunkBytes` at a time (the view is reused). */
  readBack (chunkBytes: number, onChunk: (bytes: Uint8Array) => void): void {
    const buffer = new Uint8Array(chunkBytes)
    for (let at = 0; at < this.position;) {
      const n = fs.readSync(this.readFd(), buffer, 0, Math.min(chunkBytes, this.position - at), at)
      if (n === 0) throw new Error(`${this.tempPath} is shorter than what was written`)
      onChunk(buffer.subarray(0, n))
      at += n
    }
  }

  private readFd (): number {
    // Opened for writing only: reads go through a second descriptor, opened once.
    this.readDescriptor ??= fs.openSync(this.tempPath, 'r')
    return this.readDescriptor
  }

  /** Syncs, closes and renames to `finalPath`. */
  commit (finalPath: string): void {
    fs.fdatasyncSync(this.fd)
    this.closeFds()
    fs.renameSync(this.tempPath, finalPath)
  }

  abort (): void {
    this.closeFds()
    fs.rmSync(this.tempPath, { force: true })
  }

  private closeFds (): void {
    if (this.fd >= 0) fs.closeSync(this.fd)
    if (this.readDescriptor !== null) fs.closeSync(this.readDescriptor)
    this.fd = -1
    this.readDescriptor = null
  }
}
