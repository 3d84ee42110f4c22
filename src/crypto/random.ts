import sodium from 'sodium-native'

export function randomBytes (length: number): Uint8Array {
  const out = new Uint8Array(length)
  sodium.randombytes_buf(out)
  return out
}
