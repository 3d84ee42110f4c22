import { Readable } from 'node:stream'
import { QuietError } from './errors.js'
import { RECORDS_PER_BATCH } from '../files/encrypt.js'
import { toHex } from '../bytes.js'
import { SLICE_PLAINTEXT_BYTES } from '../wire/index.js'
import type { NodeContext } from './context.js'
import type { LocalFile } from './local-file.js'

/** A byte range being read (inclusive); `verified`: every byte of it passed a hash check (always, since verified windows). */
export interface OpenRead {
  stream: Readable
  start: number
  end: number
  size: number
  verified: boolean
  name: string
  mediaType: string
}

/** Slices past the one a reader waits for that are fetched with it: about 1 MB of read-ahead. */
export const READ_AHEAD_SLICES = 2400

interface SliceWaiter {
  local: LocalFile
  sliceNo: number
  resolve: () => void
  reject: (err: Error) => void
}

/**
 * Reads of a file's plaintext, also while it downloads: held slices are authenticated and
 * streamed at once; for a missing one the ranges covering it (and some read-ahead) become
 * urgent, fetched before everything else even while paused, and the read waits.
 */
export class Reads {
  private readonly waiters = new Set<SliceWaiter>()

  /** `request`: fetch a file that is not being fetched (a read of it asks for it). */
  constructor (private readonly ctx: NodeContext, private readonly request: (fileId: string) => void) {}

  /**
   * The plaintext of a complete, verified file. Every slice is authenticated again as it is
   * read; a damaged record ends the stream with an error instead of wrong bytes.
   */
  readFile (fileId: string): Readable {
    const descriptor = this.ctx.files.descriptor(fileId)
    const local = this.ctx.files.local(descriptor)
    if (local === null || local.status !== 'complete') {
      throw new QuietError('not_ready', local?.status === 'failed' ? `file failed verification: ${local.reason ?? ''}` : 'file is not complete')
    }
    return Readable.from(this.readPlainRange(local, 0, descriptor.size - 1))
  }

  /** See `Node.openRead`. */
  openRead (fileId: string, range?: { start: number, end: number }): OpenRead {
    const { files } = this.ctx
    const descriptor = files.descriptor(fileId)
    let local = files.local(descriptor)
    if (local?.status === 'failed') throw new QuietError('not_ready', `file failed verification: ${local.reason ?? ''}`)
    const want = files.wanted.get(toHex(descriptor.fileId))
    if (local?.status !== 'complete' && (want === undefined || want.state === 'expired')) {
      this.request(fileId)
      local = files.local(descriptor)
    }
    const size = descriptor.size
    const start = range?.start ?? 0
    const end = range?.end ?? size - 1
    if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0 || end >= size || start > end + 1 || (range !== undefined && start > end)) {
      throw new QuietError('range_not_satisfiable', `range ${start}-${end} is outside a file of ${size} bytes`, { size })
    }
    return {
      stream: Readable.from(this.readPlainRange(local!, start, end)),
      // Every byte read out is of a window that matched its hash, itself checked against the root.
      start, end, size, verified: true, name: descriptor.name, mediaType: descriptor.mediaType
    }
  }

  /** Wakes readers whose slice arrived; fails those whose file went away. */
  tick (): void {
    if (this.waiters.size === 0) return
    const { files } = this.ctx
    for (const waiter of this.waiters) {
      const { local } = waiter
      const want = files.wanted.get(local.key)
      let error: QuietError | null = null
      if (files.locals.get(local.key) !== local) error = new QuietError('conflict', 'the download was cancelled')
      else if (local.status === 'failed') error = new QuietError('not_ready', `file failed verification: ${local.reason ?? ''}`)
      else if (want?.state === 'expired') error = new QuietError('conflict', 'the download expired')
      if (error === null && !local.servable.has(waiter.sliceNo)) {
        // Its window may have failed its hash and been dropped: fetch it first again.
        if (!local.have.has(waiter.sliceNo)) local.urgent.add(local.layout.rangeOf(waiter.sliceNo))
        continue
      }
      this.waiters.delete(waiter)
      if (error === null) waiter.resolve()
      else waiter.reject(error)
    }
    for (const local of files.locals.values()) {
      for (const r of local.urgent) if (local.missing(r) === 0) local.urgent.delete(r)
    }
  }

  private async * readPlainRange (local: LocalFile, start: number, end: number): AsyncGenerator<Buffer> {
    const { descriptor } = local
    const lastSlice = Math.floor(end / SLICE_PLAINTEXT_BYTES)
    let position = start
    while (position <= end) {
      const first = Math.floor(position / SLICE_PLAINTEXT_BYTES)
      // Only bytes of windows that passed their hash are read out.
      if (!local.servable.has(first)) await this.waitForSlice(local, first)
      if (local.status === 'failed') throw new QuietError('not_ready', `file failed verification: ${local.reason ?? ''}`)
      let count = 1
      while (count < RECORDS_PER_BATCH && first + count <= lastSlice && local.servable.has(first + count)) count++
      const plain = Buffer.allocUnsafe(count * SLICE_PLAINTEXT_BYTES)
      const damaged = local.readPlaintext(first, count, plain)
      if (damaged >= 0) throw new QuietError('corrupt', `stored slice ${damaged} of ${toHex(descriptor.fileId)} does not authenticate`)
      const from = position - first * SLICE_PLAINTEXT_BYTES
      const to = Math.min(end + 1, (first + count) * SLICE_PLAINTEXT_BYTES) - first * SLICE_PLAINTEXT_BYTES
      yield plain.subarray(from, to)
      position = first * SLICE_PLAINTEXT_BYTES + to
    }
  }

  /** Resolves once slice `sliceNo` is held and its window verified; its ranges and some read-ahead become urgent. */
  private async waitForSlice (local: LocalFile, sliceNo: number): Promise<void> {
    const last = Math.min(local.descriptor.slices - 1, sliceNo + READ_AHEAD_SLICES)
    for (let r = local.layout.rangeOf(sliceNo); r <= local.layout.rangeOf(last); r++) {
      if (local.missing(r) > 0) local.urgent.add(r)
    }
    await new Promise<void>((resolve, reject) => this.waiters.add({ local, sliceNo, resolve, reject }))
  }
}
