import sodium from 'sodium-native'

/** XChaCha20-Poly1305 IETF sizes. */
export const AEAD_KEY_BYTES = 32
export const AEAD_NONCE_BYTES = 24
export const AEAD_TAG_BYTES = 16

/**
 * Encrypts `plaintext` into `ciphertext` (same length) and writes the tag into `tag`.
 * Detached form so callers can place both straight into a wire buffer without copies.
 */
export function aeadEncryptInto (
  ciphertext: Uint8Array, tag: Uint8Array, plaintext: Uint8Array,
  nonce: Uint8Array, key: Uint8Array, associatedData: Uint8Array | null = null
): void {
  sodium.crypto_aead_xchacha20poly1305_ietf_encrypt_detached(ciphertext, tag, plaintext, associatedData, null, nonce, key)
}

/**
 * Authenticates and decrypts into `plaintext`. Returns false (and leaves `plaintext`
 * unspecified) when the tag does not verify: callers treat that as a rejected input.
 */
export function aeadDecryptInto (
  plaintext: Uint8Array, ciphertext: Uint8Array, tag: Uint8Array,
  nonce: Uint8Array, key: Uint8Array, associatedData: Uint8Array | null = null
): boolean {
  try {
    sodium.crypto_aead_xchacha20poly1305_ietf_decrypt_detached(plaintext, null, ciphertext, tag, associatedData, nonce, key)
    return true
  } catch {
    return false
  }
}

/** Combined form: returns `ciphertext ‖ tag`. */
export function aeadEncrypt (plaintext: Uint8Array, nonce: Uint8Array, key: Uint8Array, associatedData: Uint8Array | null = null): Uint8Array {
  const out = new Uint8Array(plaintext.length + AEAD_TAG_BYTES)
  aeadEncryptInto(out.subarray(0, plaintext.length), out.subarray(plaintext.length), plaintext, nonce, key, associatedData)
  return out
}

/** Combined form: returns the plaintext, or null when `sealed` does not authenticate. */
export function aeadDecrypt (sealed: Uint8Array, nonce: Uint8Array, key: Uint8Array, associatedData: Uint8Array | null = null): Uint8Array | null {
  if (sealed.length < AEAD_TAG_BYTES) return null
  const length = sealed.length - AEAD_TAG_BYTES
  const out = new Uint8Array(length)
  return aeadDecryptInto(out, sealed.subarray(0, length), sealed.subarray(length), nonce, key, associatedData) ? out : null
}
