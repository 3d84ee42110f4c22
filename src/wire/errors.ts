export type WireErrorCode = 'length' | 'version' | 'type' | 'field' | 'signature' | 'decrypt'

/** Thrown by every decoder: the input is rejected whole, nothing half-parsed escapes. */
export class WireError extends Error {
  constructor (readonly code: WireErrorCode, message: string) {
    super(message)
    this.name = 'WireError'
  }
}

export function expectLength (bytes: Uint8Array, length: number, what: string): void {
  if (bytes.length !== length) throw new WireError('length', `${what} must be ${length} bytes, got ${bytes.length}`)
}
