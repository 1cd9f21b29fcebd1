// Package seal encrypts small secrets the server keeps at rest: registry
// credentials and webhook HMAC secrets. A Key is 32 random bytes, read
// from a file or an environment variable, never from the database it
// protects; sealed values are AES-256-GCM with a random nonce and the
// owning row's name as associated data, so a ciphertext moved to another
// row does not open.
//
// The standard library's AES-GCM is used (no dependency): the values are
// small and the key is the server's own, so neither key wrapping nor a KMS
// is needed here; docs/server.md says how to rotate.
package seal
