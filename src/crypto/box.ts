import sodium from 'sodium-native'

/** Bytes a sealed box adds to its message (ephemeral public key + tag). */
export const SEAL_OVERHEAD_BYTES = 48

/**
 * Anonymous public-key encryption to an Ed25519 identity: the X25519 key is derived from
 * the recipient's Ed25519 public key, so peers need only one published key.
 */
export function sealTo (message: Uint8Array, recipientEdPk: Uint8Array): Uint8Array {
  const curvePk = new Uint8Array(32)
  sodium.crypto_sign_ed25519_pk_to_curve25519(curvePk, recipientEdPk)
  const out = new Uint8Array(message.length + SEAL_OVERHEAD_BYTES)
  sodium.crypto_box_seal(out, message, curvePk)
  return out
}

/** Opens a sealed box with our Ed25519 key pair; null when it was not for us or was altered. */
export function openSealed (sealed: Uint8Array, edPk: Uint8Array, edSk: Uint8Array): Uint8Array | null {
  if (sealed.length < SEAL_OVERHEAD_BYTES) return null
  const curvePk = new Uint8Array(32)
  const curveSk = new Uint8Array(32)
  sodium.crypto_sign_ed25519_pk_to_curve25519(curvePk, edPk)
  sodium.crypto_sign_ed25519_sk_to_curve25519(curveSk, edSk)
  const out = new Uint8Array(sealed.length - SEAL_OVERHEAD_BYTES)
  try {
    return sodium.crypto_box_seal_open(out, sealed, curvePk, curveSk) ? out : null
  } catch {
    return null
  } finally {
    curveSk.fill(0)
  }
}
