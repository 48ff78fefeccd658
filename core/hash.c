#include "hash.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>

/* OpenSSL 3 looks EVP_sha256() up in its provider table on every digest;
 * the first by-hash/ look hashes every record's code, so the fetched
 * implementation is kept for the life of the process.  It is freed by an
 * atexit handler registered after OpenSSL's own (the fetch initialises the
 * library), so it runs before OpenSSL's cleanup.  Each thread also keeps
 * one digest context: EVP_Digest makes and frees one per call, and takes
 * and drops a reference to the shared implementation each time (an atomic
 * that the threads of a by-hash build fought over). */
static EVP_MD *sha256_md;
static pthread_key_t ctx_key;
static bool ctx_key_ok;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;

static void ctx_free(void *ctx)
{
	EVP_MD_CTX_free(ctx);
}

static void sha256_free(void)
{
	if (ctx_key_ok) {
		ctx_free(pthread_getspecific(ctx_key));
		pthread_setspecific(ctx_key, NULL);
	}
	EVP_MD_free(sha256_md);
	sha256_md = NULL;
}

static void sha256_fetch(void)
{
	sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
	ctx_key_ok = pthread_key_create(&ctx_key, ctx_free) == 0;
	if (sha256_md && atexit(sha256_free) != 0)
		sha256_free();
}

/* This thread's context, or NULL (then EVP_Digest makes one). */
static EVP_MD_CTX *thread_ctx(void)
{
	EVP_MD_CTX *ctx;

	if (!ctx_key_ok || !sha256_md)
		return NULL;
	ctx = pthread_getspecific(ctx_key);
	if (ctx)
		return ctx;
	ctx = EVP_MD_CTX_new();
	if (ctx && pthread_setspecific(ctx_key, ctx) != 0) {
		EVP_MD_CTX_free(ctx);
		ctx = NULL;
	}
	return ctx;
}

int hash_sha256(const void *p, size_t n, unsigned char out[HASH_LEN])
{
	unsigned int len = 0;
	EVP_MD_CTX *ctx;

	pthread_once(&sha256_once, sha256_fetch);
	ctx = thread_ctx();
	if (ctx) {
		if (!EVP_DigestInit_ex2(ctx, sha256_md, NULL) ||
		    !EVP_DigestUpdate(ctx, p, n) ||
		    !EVP_DigestFinal_ex(ctx, out, &len))
			return -EIO;
	} else if (!EVP_Digest(p, n, out, &len,
			       sha256_md ? sha256_md : EVP_sha256(), NULL)) {
		return -EIO;
	}
	return len == HASH_LEN ? 0 : -EIO;
}

void hash_to_hex(const unsigned char d[HASH_LEN], char hex[HASH_HEX_LEN + 1])
{
	static const char digit[] = "0123456789abcdef";
	int i;

	for (i = 0; i < HASH_LEN; i++) {
		hex[2 * i] = digit[d[i] >> 4];
		hex[2 * i + 1] = digit[d[i] & 0xf];
	}
	hex[HASH_HEX_LEN] = '\0';
}

static int nibble(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int hash_from_hex(const char *hex, size_t len, unsigned char d[HASH_LEN])
{
	unsigned char tmp[HASH_LEN];
	int i, hi, lo;

	if (len != HASH_HEX_LEN)
		return -EINVAL;
	for (i = 0; i < HASH_LEN; i++) {
		hi = nibble(hex[2 * i]);
		lo = nibble(hex[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return -EINVAL;
		tmp[i] = (unsigned char)(hi << 4 | lo);
	}
	for (i = 0; i < HASH_LEN; i++)
		d[i] = tmp[i];
	return 0;
}

/* The multiply-fold mixing of wyhash, over four independent lanes so that
 * the multiplications overlap. */
static uint64_t mum(uint64_t a, uint64_t b)
{
	__uint128_t r = (__uint128_t)a * b;

	return (uint64_t)r ^ (uint64_t)(r >> 64);
}

static uint64_t rd64(const unsigned char *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

#define TAG_P0 UINT64_C(0xa0761d6478bd642f)
#define TAG_P1 UINT64_C(0xe7037ed1a0b428db)
#define TAG_P2 UINT64_C(0x8ebc6af09c88c6e3)
#define TAG_P3 UINT64_C(0x589965cc75374cc3)

uint64_t hash_tag(const void *data, size_t n)
{
	const unsigned char *p = data;
	uint64_t a = TAG_P0 ^ n, b = TAG_P1, c = TAG_P2, d = TAG_P3, t = 0;
	size_t i = 0;

	for (; i + 32 <= n; i += 32) {
		a = mum(a ^ rd64(p + i), TAG_P1);
		b = mum(b ^ rd64(p + i + 8), TAG_P2);
		c = mum(c ^ rd64(p + i + 16), TAG_P3);
		d = mum(d ^ rd64(p + i + 24), TAG_P0);
	}
	for (; i + 8 <= n; i += 8)
		a = mum(a ^ rd64(p + i), TAG_P1);
	if (i < n) {
		memcpy(&t, p + i, n - i);
		b = mum(b ^ t, TAG_P2);
	}
	return mum(mum(a ^ c, TAG_P1) ^ mum(b ^ d, TAG_P2), TAG_P3 ^ n);
}
