import sodium from 'sodium-native'

export const PUBLIC_KEY_BYTES = 32
export const SECRET_KEY_BYTES = 64
export const SEED_BYTES = 32
export const SIGNATURE_BYTES = 64

export interface KeyPair {
  publicKey: Uint8Array
  secretKey: Uint8Array
}

/** A fresh Ed25519 key pair, or the one derived from `seed` (32 bytes). */
export function signKeyPair (seed?: Uint8Array): KeyPair {
  const publicKey = new Uint8Array(PUBLIC_KEY_BYTES)
  const secretKey = new Uint8Array(SECRET_KEY_BYTES)
  if (seed !== undefined) {
    if (seed.length !== SEED_BYTES) throw new RangeError(`Ed25519 seed must be ${SEED_BYTES} bytes`)
    sodium.crypto_sign_seed_keypair(publicKey, secretKey, seed)
  } else {
    sodium.crypto_sign_keypair(publicKey, secretKey)
  }
  return { publicKey, secretKey }
}

export function sign (message: Uint8Array, secretKey: Uint8Array): Uint8Array {
  const signature = new Uint8Array(SIGNATURE_BYTES)
  sodium.crypto_sign_detached(signature, message, secretKey)
  return signature
}

export function verify (signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array): boolean {
  if (signature.length !== SIGNATURE_BYTES || publicKey.length !== PUBLIC_KEY_BYTES) return false
  return sodium.crypto_sign_verify_detached(signature, message, publicKey)
}
