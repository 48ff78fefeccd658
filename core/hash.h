/* hash.h - SHA-256 of strategy code (OpenSSL EVP), and its hex form as used
 * for by-hash/<hex>/ names and the "code_hash" field; a fast 64-bit tag for
 * telling two versions of a line apart.  Thread-safe. */
#ifndef ITERFS_HASH_H
#define ITERFS_HASH_H

#include <stddef.h>
#include <stdint.h>

#define HASH_LEN 32
#define HASH_HEX_LEN 64

/* Returns 0 or -ENOMEM / -EIO when libcrypto fails. */
int hash_sha256(const void *p, size_t n, unsigned char out[HASH_LEN]);
/* Lower-case hex, NUL-terminated. */
void hash_to_hex(const unsigned char d[HASH_LEN], char hex[HASH_HEX_LEN + 1]);
/* Parse exactly 64 hex digits (either case).  Returns 0 or -EINVAL. */
int hash_from_hex(const char *hex, size_t len, unsigned char d[HASH_LEN]);

/* A 64-bit hash of n bytes: fast (several GB/s), stable across runs and
 * builds (it names versions of a record that outlive a mount), not
 * cryptographic: a deliberate collision is easy to make. */
uint64_t hash_tag(const void *p, size_t n);

#endif
