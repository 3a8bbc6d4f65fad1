/* The in-memory index from key_ID to pending row: key_IDs are random, so
 * their first eight bytes are already a good hash. */
#include <stdlib.h>
#include <string.h>

#include "kms_internal.h"

static size_t kagi__idmap_slot(const kagi__idmap *m, const uint8_t id[KAGI_KEY_ID_BYTES])
{
    uint64_t h;
    memcpy(&h, id, sizeof h);
    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9ULL;
    h ^= h >> 32;
    return (size_t)h & (m->cap - 1);
}

int kagi__idmap_init(kagi__idmap *m, size_t cap_hint)
{
    size_t cap = 64;
    while (cap < cap_hint * 2) cap *= 2;
    m->keys = calloc(cap, sizeof *m->keys);
    m->vals = calloc(cap, sizeof *m->vals);
    m->cap = cap;
    m->n = 0;
    if (!m->keys || !m->vals) {
        kagi__idmap_free(m);
        return kagi__err(KAGI_ERR_NOMEM, "key index: out of memory for %zu slots", cap);
    }
    return KAGI_OK;
}

void kagi__idmap_free(kagi__idmap *m)
{
    free(m->keys);
    free(m->vals);
    m->keys = NULL;
    m->vals = NULL;
    m->cap = m->n = 0;
}

static int kagi__idmap_grow(kagi__idmap *m)
{
    kagi__idmap old = *m;
    KAGI__TRY(kagi__idmap_init(m, old.cap));
    for (size_t i = 0; i < old.cap; i++)
        if (old.vals[i]) {
            size_t j = kagi__idmap_slot(m, old.keys[i]);
            while (m->vals[j]) j = (j + 1) & (m->cap - 1);
            memcpy(m->keys[j], old.keys[i], KAGI_KEY_ID_BYTES);
            m->vals[j] = old.vals[i];
            m->n++;
        }
    kagi__idmap_free(&old);
    return KAGI_OK;
}

int kagi__idmap_put(kagi__idmap *m, const uint8_t id[KAGI_KEY_ID_BYTES], int64_t val)
{
    if ((m->n + 1) * 2 > m->cap) KAGI__TRY(kagi__idmap_grow(m));
    size_t j = kagi__idmap_slot(m, id);
    while (m->vals[j]) {
        if (!memcmp(m->keys[j], id, KAGI_KEY_ID_BYTES)) {
            m->vals[j] = val;
            return KAGI_OK;
        }
        j = (j + 1) & (m->cap - 1);
    }
    memcpy(m->keys[j], id, KAGI_KEY_ID_BYTES);
    m->vals[j] = val;
    m->n++;
    return KAGI_OK;
}

int64_t kagi__idmap_get(const kagi__idmap *m, const uint8_t id[KAGI_KEY_ID_BYTES])
{
    if (!m->cap) return 0;
    size_t j = kagi__idmap_slot(m, id);
    while (m->vals[j]) {
        if (!memcmp(m->keys[j], id, KAGI_KEY_ID_BYTES)) return m->vals[j];
        j = (j + 1) & (m->cap - 1);
    }
    return 0;
}

int kagi__idmap_del(kagi__idmap *m, const uint8_t id[KAGI_KEY_ID_BYTES])
{
    if (!m->cap) return 0;
    size_t mask = m->cap - 1, j = kagi__idmap_slot(m, id);
    while (m->vals[j] && memcmp(m->keys[j], id, KAGI_KEY_ID_BYTES)) j = (j + 1) & mask;
    if (!m->vals[j]) return 0;
    /* Backward shift: pull later entries of the cluster into the hole when
       their home slot is not in (hole, their slot]. */
    size_t hole = j;
    for (size_t k = (j + 1) & mask; m->vals[k]; k = (k + 1) & mask) {
        size_t home = kagi__idmap_slot(m, m->keys[k]);
        int between = hole <= k ? (home > hole && home <= k) : (home > hole || home <= k);
        if (between) continue;
        memcpy(m->keys[hole], m->keys[k], KAGI_KEY_ID_BYTES);
        m->vals[hole] = m->vals[k];
        hole = k;
    }
    m->vals[hole] = 0;
    memset(m->keys[hole], 0, KAGI_KEY_ID_BYTES);
    m->n--;
    return 1;
}
