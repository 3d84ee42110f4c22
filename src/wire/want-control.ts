import { WireError, expectLength } from './errors.js'
import { PAYLOAD_BYTES, expectZero } from './signed-event.js'
import { ID_BYTES } from '../crypto/hash.js'

/**
 * Want-control event (type 0x40, local only, never sent): one user decision about a file.
 * Payload: file_id 16 | action 1 | priority 1 | zero 376.
 * The header's created_at_ms is when the decision was taken; its ttl_ms is the request's
 * time-to-live (0 = none).
 */
export const WantAction = { request: 1, pause: 2, resume: 3, cancel: 4, expire: 5 } as const
export type WantActionName = keyof typeof WantAction
const ACTION_NAMES = new Map<number, WantActionName>(Object.entries(WantAction).map(([k, v]) => [v, k as WantActionName]))

export const WantOffset = { fileId: 0, action: ID_BYTES, priority: ID_BYTES + 1, end: ID_BYTES + 2 } as const
export const MIN_PRIORITY = 1
export const MAX_PRIORITY = 10

export interface WantControl {
  fileId: Uint8Array
  action: WantActionName
  priority: number
}

export function encodeWantPayload (want: WantControl): Uint8Array {
  expectLength(want.fileId, ID_BYTES, 'file id')
  if (!Number.isInteger(want.priority) || want.priority < 0 || want.priority > MAX_PRIORITY) throw new WireError('field', 'priority must be 0..10')
  const out = new Uint8Array(PAYLOAD_BYTES)
  out.set(want.fileId, WantOffset.fileId)
  out[WantOffset.action] = WantAction[want.action]
  out[WantOffset.priority] = want.priority
  return out
}

export function decodeWantPayload (payload: Uint8Array): WantControl {
  expectLength(payload, PAYLOAD_BYTES, 'want payload')
  expectZero(payload.subarray(WantOffset.end), 'want reserved bytes')
  const action = ACTION_NAMES.get(payload[WantOffset.action]!)
  if (action === undefined) throw new WireError('field', `unknown want action ${payload[WantOffset.action]}`)
  const priority = payload[WantOffset.priority]!
  if (priority > MAX_PRIORITY) throw new WireError('field', 'priority must be 0..10')
  return { fileId: payload.slice(WantOffset.fileId, WantOffset.action), action, priority }
}
