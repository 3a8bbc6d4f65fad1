/* libFuzzer harness for the peer protocol's message (kagi_peer_parse), the
 * one thing a neighbour KME sends. Besides the sanitizers it checks what a
 * successful parse promises (ids valid, counts and sizes in range,
 * positions ascending), that writing the message back and parsing it again
 * gives the same message, and that a tag made for a key verifies while the
 * same tag on a changed ciphertext does not.
 *   make fuzz                 builds and runs it (FUZZ_SECONDS, default 60)
 *   build-fuzz/fuzz_peer DIR  to run it by hand on a corpus */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kagi/error.h"
#include "kagi/kme.h"

static int same(const kagi_peer_msg *a, const kagi_peer_msg *b)
{
    if (a->mode != b->mode || strcmp(a->link, b->link) || strcmp(a->master, b->master) ||
        a->n_slaves != b->n_slaves || a->n_path != b->n_path || a->size != b->size || a->n_keys != b->n_keys)
        return 0;
    for (unsigned i = 0; i < a->n_slaves; i++)
        if (strcmp(a->slaves[i], b->slaves[i])) return 0;
    for (unsigned i = 0; i < a->n_path; i++)
        if (strcmp(a->path[i], b->path[i])) return 0;
    for (unsigned i = 0; i < a->n_keys; i++) {
        const kagi_peer_key *x = &a->keys[i], *y = &b->keys[i];
        if (memcmp(x->id, y->id, sizeof x->id) || x->block != y->block || x->off != y->off) return 0;
        if (a->mode == KAGI_PEER_OTP && memcmp(x->tag, y->tag, 16)) return 0;
    }
    if (a->mode == KAGI_PEER_OTP && memcmp(a->ct, b->ct, (size_t)a->n_keys * a->size)) return 0;
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
    static kagi_peer_msg m, m2;
    if (kagi_peer_parse(&m, d, n) != KAGI_OK) {
        if (!m.message[0] || !memchr(m.message, 0, sizeof m.message) || m.keys || m.ct) abort();
        return 0;
    }
    if (!m.n_keys || m.n_keys > KAGI_ETSI_MAX_IDS || m.size < 1 || m.size > KAGI_PEER_MAX_KEY_BYTES) abort();
    if (!m.n_slaves || m.n_slaves > KAGI_MAX_SLAVES || !m.n_path || m.n_path > KAGI_ROUTE_MAX) abort();
    if (!kagi_etsi_valid_id(m.master, strlen(m.master)) || !kagi_etsi_valid_id(m.link, strlen(m.link))) abort();
    for (unsigned i = 0; i < m.n_path; i++)
        if (!kagi_etsi_valid_id(m.path[i], strlen(m.path[i]))) abort();
    for (unsigned i = 1; i < m.n_keys; i++)
        if (m.keys[i].block < m.keys[i - 1].block ||
            (m.keys[i].block == m.keys[i - 1].block && m.keys[i].off <= m.keys[i - 1].off))
            abort();
    char *out = NULL;
    size_t len = 0;
    if (kagi_peer_write(&m, &out, &len) != KAGI_OK) abort();
    if (kagi_peer_parse(&m2, (const uint8_t *)out, len) != KAGI_OK || !same(&m, &m2)) abort();
    free(out);
    kagi_peer_msg_clear(&m2);
    if (m.mode == KAGI_PEER_OTP) {
        uint8_t mk[KAGI_PEER_MAC_BYTES];
        for (int i = 0; i < KAGI_PEER_MAC_BYTES; i++) mk[i] = (uint8_t)(i * 37 + 11);
        kagi_peer_tag(&m, 0, mk, m.keys[0].tag);
        if (!kagi_peer_tag_ok(&m, 0, mk)) abort();
        m.ct[0] ^= 1;
        if (kagi_peer_tag_ok(&m, 0, mk)) abort();
    }
    kagi_peer_msg_clear(&m);
    return 0;
}
