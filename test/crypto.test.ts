import { test } from 'node:test'
import assert from 'node:assert/strict'
import { blake2b, id, hash32, HashStream, aeadEncrypt, aeadDecrypt, signKeyPair, sign, verify } from '../src/crypto/index.js'
import { fromHex, toHex } from '../src/bytes.js'

test('BLAKE2b-512("abc") matches RFC 7693 appendix A', () => {
  assert.equal(toHex(blake2b(new TextEncoder().encode('abc'), 64)),
    'ba80a53f981c4d0d6a2797b69f12f6e94c212f14685ac4b74b12bb6fdbffa2d1' +
    '7d87c5392aab792dc252d5de4533cc9518d38aa8dbf1925ab92386edd4009923')
})

test('streaming hash equals one-shot id and hash32 for any chunking', () => {
  const data = new Uint8Array(10_000).map((_, i) => (i * 7 + 3) & 0xff)
  const idStream = new HashStream(16)
  const rootStream = new HashStream(32)
  for (let at = 0; at < data.length; at += 777) {
    idStream.update(data.subarray(at, at + 777))
    rootStream.update(data.subarray(at, at + 777))
  }
  assert.deepEqual(idStream.digest(), id(data))
  assert.deepEqual(rootStream.digest(), hash32(data))
  assert.notDeepEqual(id(data), hash32(data).subarray(0, 16), '16- and 32-byte BLAKE2b differ, not truncations')
})

test('XChaCha20-Poly1305 IETF matches the CFRG XChaCha draft test vector (A.3.1)', () => {
  const plaintext = new TextEncoder().encode("Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.")
  const ad = fromHex('50515253c0c1c2c3c4c5c6c7')
  const key = fromHex('808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f')
  const nonce = fromHex('404142434445464748494a4b4c4d4e4f5051525354555657')
  const sealed = aeadEncrypt(plaintext, nonce, key, ad)
  assert.equal(toHex(sealed.subarray(0, plaintext.length)),
    'bd6d179d3e83d43b9576579493c0e939572a1700252bfaccbed2902c21396cbb' +
    '731c7f1b0b4aa6440bf3a82f4eda7e39ae64c6708c54c216cb96b72e1213b452' +
    '2f8c9ba40db5d945b11b69b982c1bb9e3f3fac2bc369488f76b2383565d3fff9' +
    '21f9664c97637da9768812f615c68b13b52e')
  assert.equal(toHex(sealed.subarray(plaintext.length)), 'c0875924c1c7987947deafd8780acf49')
  assert.deepEqual(aeadDecrypt(sealed, nonce, key, ad), plaintext)
})

test('XChaCha20-Poly1305 rejects a flipped bit, a wrong key and wrong associated data', () => {
  const key = new Uint8Array(32).fill(1)
  const nonce = new Uint8Array(24).fill(2)
  const sealed = aeadEncrypt(new Uint8Array(100).fill(3), nonce, key, new Uint8Array([9]))
  const flipped = sealed.slice()
  flipped[10]! ^= 0x01
  assert.equal(aeadDecrypt(flipped, nonce, key, new Uint8Array([9])), null)
  assert.equal(aeadDecrypt(sealed, nonce, new Uint8Array(32).fill(4), new Uint8Array([9])), null)
  assert.equal(aeadDecrypt(sealed, nonce, key, new Uint8Array([8])), null)
  assert.equal(aeadDecrypt(sealed.subarray(0, 5), nonce, key), null)
})

test('Ed25519 matches RFC 8032 section 7.1 test 1', () => {
  const pair = signKeyPair(fromHex('9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60'))
  assert.equal(toHex(pair.publicKey), 'd75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a')
  const signature = sign(new Uint8Array(0), pair.secretKey)
  assert.equal(toHex(signature),
    'e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155' +
    '5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b')
  assert.equal(verify(signature, new Uint8Array(0), pair.publicKey), true)
  assert.equal(verify(signature, new Uint8Array([0]), pair.publicKey), false)
  assert.equal(verify(signature.subarray(0, 10), new Uint8Array(0), pair.publicKey), false)
})
