#include "hash.h"

#include <errno.h>
#include <openssl/evp.h>

int hash_sha256(const void *p, size_t n, unsigned char out[HASH_LEN])
{
	unsigned int len = 0;

	if (!EVP_Digest(p, n, out, &len, EVP_sha256(), NULL))
		return -EIO;
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
