/* The peer protocol's message: what one KME tells its neighbour about keys
 * it took from their link (docs/peer.md). Parsed strictly (every field
 * checked, unknown fields refused), since a peer is a trusted but separate
 * machine whose bugs must not become ours. The information-theoretic MAC
 * of a relayed key binds everything the receiver acts on. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "internal.h"
#include "kagi/auth.h"
#include "kagi/kme.h"

void kagi_peer_msg_clear(kagi_peer_msg *m)
{
    if (m->ct) {
        kagi_wipe(m->ct, (size_t)m->n_keys * m->size);
        free(m->ct);
    }
    free(m->keys);
    m->ct = NULL;
    m->keys = NULL;
    m->n_keys = 0;
}

static int kagi__pfail(kagi_peer_msg *m, const char *fmt, ...) KAGI__PRINTF(2, 3);
static int kagi__pfail(kagi_peer_msg *m, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m->message, sizeof m->message, fmt, ap);
    va_end(ap);
    kagi_peer_msg_clear(m);
    return kagi__err(KAGI_ERR_FORMAT, "peer message: %s", m->message);
}

static int kagi__pid(kagi_peer_msg *m, json_t *v, const char *what, char *out, size_t cap)
{
    const char *s = json_string_value(v);
    size_t n = s ? json_string_length(v) : 0;
    if (!s || n >= cap || !kagi_etsi_valid_id(s, n)) return kagi__pfail(m, "%s is not a valid id", what);
    memcpy(out, s, n + 1);
    return KAGI_OK;
}

/* A JSON array of ids into out[max][KAGI_SAE_ID_MAX + 1]. */
static int kagi__pids(kagi_peer_msg *m, json_t *a, const char *what, char (*out)[KAGI_SAE_ID_MAX + 1],
                      unsigned max, unsigned *n)
{
    if (!json_is_array(a) || json_array_size(a) < 1 || json_array_size(a) > max)
        return kagi__pfail(m, "%s must be an array of 1 to %u ids", what, max);
    for (size_t i = 0; i < json_array_size(a); i++) {
        KAGI__TRY(kagi__pid(m, json_array_get(a, i), what, out[i], KAGI_SAE_ID_MAX + 1));
        for (size_t j = 0; j < i; j++)
            if (!strcmp(out[i], out[j])) return kagi__pfail(m, "%s names %s twice", what, out[i]);
    }
    *n = (unsigned)json_array_size(a);
    return KAGI_OK;
}

/* Strict base64 of exactly n bytes. */
static int kagi__b64(const char *s, size_t len, uint8_t *out, size_t n)
{
    if (len != 4 * ((n + 2) / 3) || len > 16384) return -1;
    uint8_t tmp[12288 + 3];
    int got = EVP_DecodeBlock(tmp, (const unsigned char *)s, (int)len);
    int ok = got >= 0 && (size_t)got == 4 * ((n + 2) / 3) / 4 * 3;
    /* the padding must be exactly what n implies */
    size_t pad = (3 - n % 3) % 3;
    for (size_t i = 0; ok && i < pad; i++) ok = s[len - 1 - i] == '=';
    if (ok && len > pad && s[len - 1 - pad] == '=') ok = 0;
    if (ok) memcpy(out, tmp, n);
    kagi_wipe(tmp, sizeof tmp);
    return ok ? 0 : -1;
}

static int kagi__hex16(const char *s, size_t len, uint8_t out[16])
{
    if (len != 32) return -1;
    for (size_t i = 0; i < 16; i++) {
        unsigned v = 0;
        for (int j = 0; j < 2; j++) {
            char c = s[2 * i + (size_t)j];
            unsigned d = c >= '0' && c <= '9' ? (unsigned)(c - '0') : c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10) : 16;
            if (d > 15) return -1;
            v = v * 16 + d;
        }
        out[i] = (uint8_t)v;
    }
    return 0;
}

int kagi_peer_parse(kagi_peer_msg *m, const uint8_t *body, size_t len)
{
    memset(m, 0, sizeof *m);
    json_error_t err;
    json_t *o = json_loadb((const char *)body, len, JSON_REJECT_DUPLICATES, &err);
    if (!json_is_object(o)) {
        json_decref(o);
        return kagi__pfail(m, "body is not a JSON object (%s)", o ? "another value" : err.text);
    }
    int e = KAGI_OK;
    static const char *const known[] = {"mode", "link", "master", "slaves", "path", "size", "keys", NULL};
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v) {
        int ok = 0;
        for (int i = 0; known[i]; i++) ok |= !strcmp(k, known[i]);
        if (!ok) {
            e = kagi__pfail(m, "unknown field \"%.40s\"", k);
            goto out;
        }
    }
    const char *mode = json_string_value(json_object_get(o, "mode"));
    if (mode && !strcmp(mode, "direct")) m->mode = KAGI_PEER_DIRECT;
    else if (mode && !strcmp(mode, "otp")) m->mode = KAGI_PEER_OTP;
    else {
        e = kagi__pfail(m, "mode must be \"direct\" or \"otp\"");
        goto out;
    }
    const char *link = json_string_value(json_object_get(o, "link"));
    size_t ll = link ? strlen(link) : 0;
    if (!link || ll > KAGI_LINK_NAME_MAX || !kagi_etsi_valid_id(link, ll)) {
        e = kagi__pfail(m, "link is not a valid link name");
        goto out;
    }
    memcpy(m->link, link, ll + 1);
    if ((e = kagi__pid(m, json_object_get(o, "master"), "master", m->master, sizeof m->master))) goto out;
    if ((e = kagi__pids(m, json_object_get(o, "slaves"), "slaves", m->slaves, KAGI_MAX_SLAVES, &m->n_slaves)))
        goto out;
    if ((e = kagi__pids(m, json_object_get(o, "path"), "path", m->path, KAGI_ROUTE_MAX, &m->n_path))) goto out;
    json_t *size = json_object_get(o, "size");
    if (!json_is_integer(size) || json_integer_value(size) < 1 || json_integer_value(size) > KAGI_PEER_MAX_KEY_BYTES) {
        e = kagi__pfail(m, "size must be a whole number of bytes, 1 to %d", KAGI_PEER_MAX_KEY_BYTES);
        goto out;
    }
    m->size = (size_t)json_integer_value(size);
    json_t *keys = json_object_get(o, "keys");
    size_t n = json_is_array(keys) ? json_array_size(keys) : 0;
    if (n < 1 || n > KAGI_ETSI_MAX_IDS) {
        e = kagi__pfail(m, "keys must be an array of 1 to %d keys", KAGI_ETSI_MAX_IDS);
        goto out;
    }
    m->keys = calloc(n, sizeof *m->keys);
    if (m->mode == KAGI_PEER_OTP) m->ct = malloc(n * m->size);
    if (!m->keys || (m->mode == KAGI_PEER_OTP && !m->ct)) {
        e = kagi__pfail(m, "out of memory");
        goto out;
    }
    m->n_keys = (unsigned)n;
    for (size_t i = 0; i < n; i++) {
        json_t *x = json_array_get(keys, i);
        kagi_peer_key *pk = &m->keys[i];
        size_t want = m->mode == KAGI_PEER_OTP ? 5 : 3;
        const char *id = json_string_value(json_object_get(x, "key_ID"));
        json_t *blk = json_object_get(x, "block"), *off = json_object_get(x, "offset");
        if (!json_is_object(x) || json_object_size(x) != want || !id ||
            kagi_uuid_parse(id, strlen(id), pk->id) != KAGI_OK || !json_is_integer(blk) ||
            json_integer_value(blk) < 0 || !json_is_integer(off) || json_integer_value(off) < 0 ||
            json_integer_value(off) > (json_int_t)KAGI_MAX_BLOCK_BYTES) {
            e = kagi__pfail(m, "keys[%zu] must be {\"key_ID\": UUID, \"block\": N, \"offset\": N%s}", i,
                            m->mode == KAGI_PEER_OTP ? ", \"ct\": BASE64, \"tag\": HEX" : "");
            goto out;
        }
        pk->block = (int64_t)json_integer_value(blk);
        pk->off = (uint32_t)json_integer_value(off);
        for (size_t j = 0; j < i; j++)
            if (!memcmp(m->keys[j].id, pk->id, KAGI_KEY_ID_BYTES)) {
                e = kagi__pfail(m, "keys[%zu] repeats a key_ID", i);
                goto out;
            }
        if (i && (pk->block < m->keys[i - 1].block ||
                  (pk->block == m->keys[i - 1].block && pk->off <= m->keys[i - 1].off))) {
            e = kagi__pfail(m, "keys[%zu] is not after keys[%zu] in the link's key stream", i, i - 1);
            goto out;
        }
        if (m->mode == KAGI_PEER_OTP) {
            json_t *ct = json_object_get(x, "ct"), *tag = json_object_get(x, "tag");
            if (!json_is_string(ct) || !json_is_string(tag) ||
                kagi__b64(json_string_value(ct), json_string_length(ct), m->ct + i * m->size, m->size) ||
                kagi__hex16(json_string_value(tag), json_string_length(tag), pk->tag)) {
                e = kagi__pfail(m, "keys[%zu]: ct must be base64 of %zu bytes and tag 32 hex digits", i, m->size);
                goto out;
            }
        }
    }
out:
    json_decref(o);
    return e;
}

int kagi_peer_write(const kagi_peer_msg *m, char **out, size_t *len)
{
    *out = NULL;
    json_t *o = json_object(), *sl = json_array(), *pa = json_array(), *ks = json_array();
    KAGI__FAIL_IF(!o || !sl || !pa || !ks, KAGI_ERR_NOMEM, "out of memory");
    json_object_set_new(o, "mode", json_string(m->mode == KAGI_PEER_OTP ? "otp" : "direct"));
    json_object_set_new(o, "link", json_string(m->link));
    json_object_set_new(o, "master", json_string(m->master));
    for (unsigned i = 0; i < m->n_slaves; i++) json_array_append_new(sl, json_string(m->slaves[i]));
    for (unsigned i = 0; i < m->n_path; i++) json_array_append_new(pa, json_string(m->path[i]));
    json_object_set_new(o, "slaves", sl);
    json_object_set_new(o, "path", pa);
    json_object_set_new(o, "size", json_integer((json_int_t)m->size));
    char *b64 = malloc(4 * ((m->size + 2) / 3) + 1);
    KAGI__FAIL_IF(!b64, KAGI_ERR_NOMEM, "out of memory");
    for (unsigned i = 0; i < m->n_keys; i++) {
        const kagi_peer_key *pk = &m->keys[i];
        char uuid[37];
        kagi_uuid_format(pk->id, uuid);
        json_t *x = json_pack("{s:s,s:I,s:I}", "key_ID", uuid, "block", (json_int_t)pk->block, "offset",
                              (json_int_t)pk->off);
        if (x && m->mode == KAGI_PEER_OTP) {
            /* ciphertext only: the pad never leaves the KMEs */
            EVP_EncodeBlock((unsigned char *)b64, m->ct + (size_t)i * m->size, (int)m->size);
            char hex[33];
            for (int j = 0; j < 16; j++) snprintf(hex + 2 * j, 3, "%02x", pk->tag[j]);
            json_object_set_new(x, "ct", json_string(b64));
            json_object_set_new(x, "tag", json_string(hex));
        }
        json_array_append_new(ks, x);
    }
    free(b64);
    json_object_set_new(o, "keys", ks);
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    KAGI__FAIL_IF(!s, KAGI_ERR_NOMEM, "out of memory");
    *out = s;
    *len = strlen(s);
    return KAGI_OK;
}

/* The bytes a relayed key's tag covers: a label, then every field the
 * receiver acts on, each with its length, then the ciphertext. */
static size_t kagi__auth_bytes(const kagi_peer_msg *m, unsigned i, uint8_t *b)
{
    size_t n = 0;
    memcpy(b, "kagi-peer-v1", 12);
    n = 12;
    memcpy(b + n, m->keys[i].id, KAGI_KEY_ID_BYTES);
    n += KAGI_KEY_ID_BYTES;
#define KAGI__PUTS(str)                     \
    do {                                    \
        size_t l_ = strlen(str);            \
        b[n++] = (uint8_t)l_;               \
        memcpy(b + n, str, l_);             \
        n += l_;                            \
    } while (0)
    KAGI__PUTS(m->link);
    KAGI__PUTS(m->master);
    b[n++] = (uint8_t)m->n_slaves;
    for (unsigned j = 0; j < m->n_slaves; j++) KAGI__PUTS(m->slaves[j]);
    b[n++] = (uint8_t)m->n_path;
    for (unsigned j = 0; j < m->n_path; j++) KAGI__PUTS(m->path[j]);
#undef KAGI__PUTS
    for (int j = 0; j < 4; j++) b[n++] = (uint8_t)(m->size >> (8 * j));
    memcpy(b + n, m->ct + (size_t)i * m->size, m->size);
    return n + m->size;
}

#define KAGI__AUTH_MAX (12 + KAGI_KEY_ID_BYTES + (1 + KAGI_SAE_ID_MAX) * (2 + KAGI_MAX_SLAVES + KAGI_ROUTE_MAX) + 2 + 4)

void kagi_peer_tag(const kagi_peer_msg *m, unsigned i, const uint8_t mac_key[KAGI_PEER_MAC_BYTES],
                   uint8_t tag[16])
{
    uint8_t *b = malloc(KAGI__AUTH_MAX + m->size);
    uint64_t h[2], out[2] = {0, 0};
    memcpy(h, mac_key, 16);
    if (b) {
        size_t n = kagi__auth_bytes(m, i, b);
        kagi_polyhash128(h, b, n, out);
        kagi_wipe(b, n);
        free(b);
    } else {
        /* no memory: a tag no honest sender makes, so the key is refused */
        out[0] = ~(uint64_t)0;
    }
    uint8_t t[16];
    memcpy(t, out, 16);
    for (int j = 0; j < 16; j++) tag[j] = t[j] ^ mac_key[16 + j];
    kagi_wipe(h, sizeof h);
    kagi_wipe(t, sizeof t);
    kagi_wipe(out, sizeof out);
}

int kagi_peer_tag_ok(const kagi_peer_msg *m, unsigned i, const uint8_t mac_key[KAGI_PEER_MAC_BYTES])
{
    uint8_t want[16];
    kagi_peer_tag(m, i, mac_key, want);
    int ok = CRYPTO_memcmp(want, m->keys[i].tag, 16) == 0;
    kagi_wipe(want, sizeof want);
    return ok;
}
