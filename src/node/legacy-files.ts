import fs from 'node:fs'
import { sliceFilePath } from './local-file.js'
import { openDescriptorEvent } from './projections.js'
import { EventType, WireError } from '../wire/index.js'
import type { Store } from '../store/store.js'

/** The store's file hashing, kept in `meta`: 2 is verified windows (file ids commit to their descriptors). */
const FILE_HASHING_KEY = 'file_hashing'
const FILE_HASHING = 2

/**
 * Files shared before file hashing v2 have ids that no longer verify (the id was a hash of
 * the ciphertext alone), so no member can fetch or check them. The first time a store opens
 * under v2 they are dropped: their descriptors, want-control events, projections, saves and
 * slice files. Returns their names, for the log; they must be shared again.
 */
export function dropFilesBeforeHashingV2 (store: Store, dataDir: string, networkKey: Uint8Array): string[] {
  if (store.getMeta(FILE_HASHING_KEY) === FILE_HASHING) return []
  const dropped: string[] = []
  store.transaction(() => {
    for (const descriptor of store.listDescriptors()) {
      const event = store.getEvent(descriptor.eventId)
      try {
        if (event === null) throw new WireError('field', 'descriptor event missing')
        openDescriptorEvent(event, networkKey)
        continue
      } catch (err) {
        if (!(err instanceof WireError)) throw err
      }
      store.forgetFile(descriptor.fileId, [EventType.attachmentDescriptor, EventType.wantControl])
      fs.rmSync(sliceFilePath(dataDir, descriptor.fileId), { force: true })
      dropped.push(descriptor.name)
    }
    store.setMeta(FILE_HASHING_KEY, FILE_HASHING)
  })
  return dropped
}
