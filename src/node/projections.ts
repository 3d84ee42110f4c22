import { openSignedEvent } from '../wire/signed-event.js'
import { decodeDescriptorPlaintext } from '../wire/descriptor.js'
import { openContentPayload } from '../wire/content.js'
import { decodeWantPayload } from '../wire/want-control.js'
import { EventType, SHAREABLE_TYPES } from '../wire/constants.js'
import { decodeAddressPlaintext, decodeMessagePlaintext, decodePeerPlaintext } from '../wire/network-events.js'
import { hash32 } from '../crypto/hash.js'
import type { Address, Message } from '../wire/network-events.js'
import { WireError } from '../wire/errors.js'
import { FileLayout, sliceCount } from '../files/windows.js'
import { fileIdOf } from '../files/hashing.js'
import { bytesEqual } from '../bytes.js'
import { MAX_SLICE_NO } from '../wire/slice.js'
import { id } from '../crypto/hash.js'
import type { Descriptor } from '../wire/descriptor.js'
import type { SignedEvent } from '../wire/signed-event.js'
import type { DescriptorRow, Store, WantedRow } from '../store/store.js'
import type { WantControl } from '../wire/want-control.js'

/**
 * How each logged event changes the projections. The live path and reprojection both go
 * through these functions, so a rebuilt database cannot drift from the one built live.
 */

export interface OpenedDescriptor {
  event: SignedEvent
  eventId: Uint8Array
  descriptor: Descriptor
}

/**
 * Verifies, decrypts and checks a descriptor event; throws WireError on any failure. The
 * file id must be the one its fields and its signer make (`fileIdOf`): so no second valid
 * descriptor can exist for an id, whoever sends it first.
 */
export function openDescriptorEvent (bytes: Uint8Array, networkKey: Uint8Array): OpenedDescriptor {
  const event = openSignedEvent(bytes, EventType.attachmentDescriptor)
  const descriptor = decodeDescriptorPlaintext(openContentPayload(bytes, event.payload, networkKey))
  if (sliceCount(descriptor.size) > MAX_SLICE_NO + 1) throw new WireError('field', 'file too large for 32-bit slice numbers')
  const committed = fileIdOf({ ...descriptor, sharerPk: event.header.signerPk })
  if (!bytesEqual(committed, descriptor.fileId)) throw new WireError('field', 'the file id does not match the descriptor and its signer')
  return { event, eventId: id(bytes), descriptor }
}

export function descriptorRow (opened: OpenedDescriptor): DescriptorRow {
  const { descriptor, event, eventId } = opened
  const slices = sliceCount(descriptor.size)
  return {
    fileId: descriptor.fileId,
    size: descriptor.size,
    slices,
    windows: new FileLayout(slices).windows,
    noncePrefix: descriptor.noncePrefix,
    key: descriptor.key,
    rootHash: descriptor.rootHash,
    name: descriptor.name,
    mediaType: descriptor.mediaType,
    sharedBy: event.header.signerPk.slice(),
    sharedAtMs: event.header.createdAtMs,
    eventId
  }
}

/** A descriptor's fields are fixed by its file id: the same one again changes nothing. */
export function applyDescriptor (store: Store, opened: OpenedDescriptor): boolean {
  if (store.getDescriptor(opened.descriptor.fileId) !== null) return false
  store.putDescriptor(descriptorRow(opened))
  return true
}

export interface OpenedWant {
  want: WantControl
  createdAtMs: number
  ttlMs: number
}

export function openWantEvent (bytes: Uint8Array): OpenedWant {
  const event = openSignedEvent(bytes, EventType.wantControl)
  return { want: decodeWantPayload(event.payload), createdAtMs: event.header.createdAtMs, ttlMs: event.header.ttlMs }
}

/** Folds one user decision into the wanted table; returns the row after it (null: none). */
export function applyWant (store: Store, opened: OpenedWant): WantedRow | null {
  const { want, createdAtMs, ttlMs } = opened
  const row = store.getWanted(want.fileId)
  let next: WantedRow | null = row
  switch (want.action) {
    case 'request':
      next = { fileId: want.fileId, priority: want.priority, state: 'wanted', ttlMs, requestedAtMs: createdAtMs, updatedAtMs: createdAtMs }
      break
    case 'pause':
      if (row !== null) next = { ...row, state: 'paused', updatedAtMs: createdAtMs }
      break
    case 'resume':
      if (row !== null) next = { ...row, state: 'wanted', updatedAtMs: createdAtMs }
      break
    case 'expire':
      if (row !== null) next = { ...row, state: 'expired', updatedAtMs: createdAtMs }
      break
    case 'cancel':
      store.deleteWanted(want.fileId)
      return null
  }
  if (next !== null) store.putWanted(next)
  return next
}

/** The 32-bit key ordinary sync windows are cut from: the first 4 bytes of hash32(event_id). */
export function syncKeyOf (eventId: Uint8Array): number {
  const digest = hash32(eventId)
  return new DataView(digest.buffer).getUint32(0)
}

export type OpenedShared =
  | { kind: 'descriptor', opened: OpenedDescriptor }
  | { kind: 'peer', event: SignedEvent, eventId: Uint8Array, name: string }
  | { kind: 'address', event: SignedEvent, eventId: Uint8Array, address: Address }
  | { kind: 'message', event: SignedEvent, eventId: Uint8Array, message: Message }

/** Verifies and decrypts any event that travels by ordinary sync; throws WireError otherwise. */
export function openSharedEvent (bytes: Uint8Array, networkKey: Uint8Array): OpenedShared {
  const type = bytes[1]!
  if (!SHAREABLE_TYPES.has(type)) throw new WireError('type', `type ${type} is not shared by sync`)
  if (type === EventType.attachmentDescriptor) return { kind: 'descriptor', opened: openDescriptorEvent(bytes, networkKey) }
  const event = openSignedEvent(bytes, type)
  const plain = openContentPayload(bytes, event.payload, networkKey)
  const eventId = id(bytes)
  if (type === EventType.peer) return { kind: 'peer', event, eventId, name: decodePeerPlaintext(plain).name }
  if (type === EventType.address) return { kind: 'address', event, eventId, address: decodeAddressPlaintext(plain) }
  return { kind: 'message', event, eventId, message: decodeMessagePlaintext(plain) }
}

export function sharedEventId (shared: OpenedShared): Uint8Array {
  return shared.kind === 'descriptor' ? shared.opened.eventId : shared.eventId
}

export function sharedFileId (shared: OpenedShared): Uint8Array | null {
  if (shared.kind === 'descriptor') return shared.opened.descriptor.fileId
  return shared.kind === 'message' ? shared.message.fileId : null
}

/** Folds a shared event into its projection. The newest announcement per peer wins. */
export function applyShared (store: Store, shared: OpenedShared): void {
  switch (shared.kind) {
    case 'descriptor': applyDescriptor(store, shared.opened); break
    case 'peer': store.putMember(shared.event.header.signerPk.slice(), shared.name, shared.event.header.createdAtMs); break
    case 'address': store.putAddress(shared.event.header.signerPk.slice(), shared.address.host, shared.address.port, shared.event.header.createdAtMs); break
    case 'message': store.putMessage(shared.eventId, shared.event.header.signerPk.slice(), shared.message.fileId, shared.message.text, shared.event.header.createdAtMs); break
  }
}

/** Replays the whole log into emptied projection tables (slice files are scanned by the caller). */
export function replayLog (store: Store, networkKey: Uint8Array): void {
  for (const logged of store.events()) {
    if (SHAREABLE_TYPES.has(logged.type)) applyShared(store, openSharedEvent(logged.body, networkKey))
    else if (logged.type === EventType.wantControl) applyWant(store, openWantEvent(logged.body))
  }
}
