export * from './hash.js'
export * from './aead.js'
export * from './sign.js'
export * from './random.js'
