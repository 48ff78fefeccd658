/* Unit tests for core/hash.c: SHA-256 against the FIPS 180-2 vectors, the
 * hex form both ways, and the code hashes of the real histories against
 * Python's hashlib. */
#include "testutil.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hash.h"
#include "record.h"

static void check_sha(const void *p, size_t n, const char *want)
{
	unsigned char d[HASH_LEN];
	char hex[HASH_HEX_LEN + 1];
	int r = hash_sha256(p, n, d);

	T_CHECK(r == 0, "hash_sha256 = %d", r);
	hash_to_hex(d, hex);
	T_CHECK(strcmp(hex, want) == 0, "sha256 of %zu bytes: %s, want %s", n,
		hex, want);
}

static void test_known_vectors(void)
{
	static const char abc56[] =
		"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
	static const char code[] =
		"def s():\n    return \"\xe6\x94\xb6\xe7\x9b\xa4\xe5\x83\xb9\"\n";
	char *million = malloc(1000000);

	check_sha("", 0, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	check_sha(NULL, 0, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	check_sha("abc", 3, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	check_sha(abc56, sizeof(abc56) - 1,
		  "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
	T_CHECK(million != NULL, "malloc");
	if (million) {
		memset(million, 'a', 1000000);
		check_sha(million, 1000000,
			  "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
	}
	free(million);
	/* Code is bytes: an embedded NUL and UTF-8 count. */
	check_sha("a\0b", 3, "59b271ae1bbcb1d31d41929817f4b16fb439eb4f31520b5ad1d5ce98920a7138");
	check_sha(code, sizeof(code) - 1,
		  "a05242623b8963681255712358901f9ff78489360d4d8d3e3055bfc96b625ab7");
}

static void test_hex(void)
{
	static const char lower[] =
		"0123456789abcdeffedcba98765432100f1e2d3c4b5a69788796a5b4c3d2e1f0";
	static const char upper[] =
		"0123456789ABCDEFFEDCBA98765432100F1E2D3C4B5A69788796A5B4C3D2E1F0";
	unsigned char d[HASH_LEN], e[HASH_LEN], keep[HASH_LEN];
	char hex[HASH_HEX_LEN + 1], bad[HASH_HEX_LEN + 1];
	int i;

	T_CHECK(hash_from_hex(lower, HASH_HEX_LEN, d) == 0, "lower");
	T_CHECK(d[0] == 0x01 && d[7] == 0xef && d[8] == 0xfe && d[31] == 0xf0,
		"bytes %02x %02x %02x %02x", d[0], d[7], d[8], d[31]);
	hash_to_hex(d, hex);
	T_CHECK(strcmp(hex, lower) == 0, "round trip: %s", hex);
	T_CHECK(hash_from_hex(upper, HASH_HEX_LEN, e) == 0 &&
		memcmp(d, e, HASH_LEN) == 0, "either case");

	memcpy(keep, d, HASH_LEN);
	T_CHECK(hash_from_hex(lower, HASH_HEX_LEN - 1, d) == -EINVAL, "63 digits");
	T_CHECK(hash_from_hex(lower, 0, d) == -EINVAL, "empty");
	T_CHECK(hash_from_hex("00", 2, d) == -EINVAL, "2 digits");
	for (i = 0; i < HASH_HEX_LEN; i++) {
		memcpy(bad, lower, sizeof(bad));
		bad[i] = i % 2 ? 'g' : ' ';
		T_CHECK(hash_from_hex(bad, HASH_HEX_LEN, d) == -EINVAL,
			"bad digit at %d accepted", i);
	}
	T_CHECK(memcmp(d, keep, HASH_LEN) == 0, "output untouched on error");
}

/* Python prints "<line> <sha256 of the code>" for each record with code. */
static const char codes_py[] =
	"import json, sys, hashlib\n"
	"for i, l in enumerate(open(sys.argv[1], 'rb').read().split(b'\\n')):\n"
	"    try: o = json.loads(l)\n"
	"    except ValueError: continue\n"
	"    if not isinstance(o, dict): continue\n"
	"    c = o['code'] if 'code' in o else o.get('strategy_code')\n"
	"    if isinstance(c, str):\n"
	"        print(i, hashlib.sha256(c.encode()).hexdigest())\n";

static void test_real_code_hashes(void)
{
	static const char *const names[] = {
		"llm_only_50.jsonl", "unified_factor_graph.jsonl",
		"json_mode_test.jsonl", "migrated_no_code.jsonl",
	};
	char *script = t_path("codes.py"), cmd[1024], want[80], hex[HASH_HEX_LEN + 1];
	unsigned char d[HASH_LEN];
	struct buf code = BUF_INIT;
	size_t i, len, start, end, line, checked;
	char *path, *data;
	bool present;
	FILE *f;

	if (system("python3 -c pass >/dev/null 2>&1") != 0) {
		printf("# python3 not found: code hashes not cross-checked\n");
		free(script);
		return;
	}
	t_write_file(script, codes_py, strlen(codes_py));
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		path = t_real_data(names[i]);
		if (!path) {
			printf("# %s not present: skipped\n", names[i]);
			continue;
		}
		data = t_read_file(path, &len);
		T_CHECK(data != NULL, "read %s", path);
		snprintf(cmd, sizeof(cmd), "python3 '%s' '%s'", script, path);
		f = popen(cmd, "r");
		T_CHECK(f != NULL, "popen %s", cmd);
		start = 0;
		line = 0;
		checked = 0;
		while (f && data && fscanf(f, "%zu %79s", &end, want) == 2) {
			for (; line < end; line++)
				start += strcspn(data + start, "\n") + 1;
			len = strcspn(data + start, "\n");
			buf_reset(&code);
			T_CHECK(view_render(data + start, len, VIEW_CODE, &code,
					    &present) == 0 && present,
				"%s:%zu: no code.py", names[i], end + 1);
			T_CHECK(hash_sha256(code.data, code.len, d) == 0, "hash");
			hash_to_hex(d, hex);
			T_CHECK(strcmp(hex, want) == 0, "%s:%zu: %s, python %s",
				names[i], end + 1, hex, want);
			checked++;
		}
		T_CHECK(!f || pclose(f) == 0, "python3 failed on %s", path);
		printf("# %s: %zu code hashes match hashlib\n", names[i], checked);
		free(data);
		free(path);
	}
	buf_free(&code);
	free(script);
}

int main(void)
{
	T_RUN(test_known_vectors);
	T_RUN(test_hex);
	T_RUN(test_real_code_hashes);
	return t_done();
}
