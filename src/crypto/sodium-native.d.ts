// Type declarations for the parts of sodium-native this project uses.
declare module 'sodium-native' {
  export const crypto_generichash_STATEBYTES: number
  export const crypto_aead_xchacha20poly1305_ietf_ABYTES: number
  export const crypto_aead_xchacha20poly1305_ietf_KEYBYTES: number
  export const crypto_aead_xchacha20poly1305_ietf_NPUBBYTES: number
  export const crypto_sign_PUBLICKEYBYTES: number
  export const crypto_sign_SECRETKEYBYTES: number
  export const crypto_sign_SEEDBYTES: number
  export const crypto_sign_BYTES: number
  export function crypto_generichash(output: Uint8Array, input: Uint8Array, key?: Uint8Array): void
  export function crypto_generichash_init(state: Uint8Array, key: Uint8Array | null, outputLength: number): void
  export function crypto_generichash_update(state: Uint8Array, input: Uint8Array): void
  export function crypto_generichash_final(state: Uint8Array, output: Uint8Array): void
  export function crypto_aead_xchacha20poly1305_ietf_encrypt_detached(
    ciphertext: Uint8Array, mac: Uint8Array, message: Uint8Array,
    additionalData: Uint8Array | null, nsec: null, nonce: Uint8Array, key: Uint8Array): number
  export function crypto_aead_xchacha20poly1305_ietf_decrypt_detached(
    message: Uint8Array, nsec: null, ciphertext: Uint8Array, mac: Uint8Array,
    additionalData: Uint8Array | null, nonce: Uint8Array, key: Uint8Array): void
  export function crypto_sign_seed_keypair(publicKey: Uint8Array, secretKey: Uint8Array, seed: Uint8Array): void
  export function crypto_sign_keypair(publicKey: Uint8Array, secretKey: Uint8Array): void
  export function crypto_sign_detached(signature: Uint8Array, message: Uint8Array, secretKey: Uint8Array): void
  export function crypto_sign_verify_detached(signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array): boolean
  export function randombytes_buf(buffer: Uint8Array): void
  export function sodium_memcmp(a: Uint8Array, b: Uint8Array): boolean
}
declare module 'sodium-native' {
  export const crypto_box_SEALBYTES: number
  export function crypto_box_seal (ciphertext: Uint8Array, message: Uint8Array, publicKey: Uint8Array): void
  export function crypto_box_seal_open (message: Uint8Array, ciphertext: Uint8Array, publicKey: Uint8Array, secretKey: Uint8Array): boolean
  export function crypto_sign_ed25519_pk_to_curve25519 (curvePk: Uint8Array, edPk: Uint8Array): void
  export function crypto_sign_ed25519_sk_to_curve25519 (curveSk: Uint8Array, edSk: Uint8Array): void
}
