/* Sifting raw detection records into a key pair and decoy-state counts. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "kagi/linksim.h"
#include "kagi/sift.h"

/* Open a raw file and check it holds the party it should. */
static int kagi__open_role(const char *path, const char *role, kagi_raw_reader **r)
{
    KAGI__TRY(kagi_raw_open(path, r));
    const char *got = kagi_raw_get(*r, "role");
    if (!got || strcmp(got, role) != 0) {
        int rc = kagi__err(KAGI_ERR_FORMAT, "%s: holds %s records, %s's expected", path,
                           got ? got : "unlabelled", role);
        kagi_raw_free(*r); /* got points into it */
        *r = NULL;
        return rc;
    }
    return KAGI_OK;
}

static int kagi__sift(kagi_raw_reader *ra, kagi_raw_reader *rb, const char *pa, const char *pb,
                      kagi_bits *ka, kagi_bits *kb, kagi_sift_stats *st)
{
    kagi_decoy_counts *c = &st->counts;
    size_t nx = 0;
    for (uint64_t i = 0;; i++) {
        kagi_raw_rec a, b;
        int ga, gb;
        KAGI__TRY(kagi_raw_next(ra, &a, &ga));
        KAGI__TRY(kagi_raw_next(rb, &b, &gb));
        if (!ga || !gb) {
            KAGI__FAIL_IF(ga != gb, KAGI_ERR_FORMAT, "%s ends after %llu records, %s goes on",
                          ga ? pb : pa, (unsigned long long)i, ga ? pa : pb);
            break;
        }
        KAGI__FAIL_IF(a.index != b.index, KAGI_ERR_FORMAT,
                      "record %llu: %s has pulse %llu, %s pulse %llu: not the same detections",
                      (unsigned long long)i, pa, (unsigned long long)a.index, pb,
                      (unsigned long long)b.index);
        KAGI__FAIL_IF(a.cls > 2, KAGI_ERR_FORMAT, "%s, record %llu: intensity class %u", pa,
                      (unsigned long long)i, a.cls);
        st->detections++;
        if (a.basis != b.basis) {
            st->dropped++;
        } else if (a.basis == 0) {
            KAGI__FAIL_IF(nx >= ka->n, KAGI_ERR_FORMAT, "%s holds more records than its trailer says", pa);
            if (a.bit) ka->w[nx >> 6] |= (uint64_t)1 << (nx & 63);
            if (b.bit) kb->w[nx >> 6] |= (uint64_t)1 << (nx & 63);
            nx++;
            c->n_x[a.cls]++;
        } else {
            c->n_z[a.cls]++;
            c->m_z[a.cls] += a.bit != b.bit;
            st->sifted_z++;
            st->errors_z += a.bit != b.bit;
        }
    }
    st->sifted_x = nx;
    return KAGI_OK;
}

/* One pass over the files: the keys are allocated for every detection
 * (the trailer's count) and cut to the key-basis bits at the end. */
static int kagi__sift_pass(const char *pa, const char *pb, kagi_bits **ka, kagi_bits **kb,
                           kagi_sift_stats *st)
{
    kagi_raw_reader *ra = NULL, *rb = NULL;
    kagi_bits *wa = NULL, *wb = NULL;
    memset(st, 0, sizeof *st);
    int rc = kagi__open_role(pa, "alice", &ra);
    if (!rc) rc = kagi__open_role(pb, "bob", &rb);
    if (!rc) {
        kagi_link l;
        rc = kagi_raw_link(ra, &l, &st->pulses);
        for (int k = 0; k < 3; k++) {
            st->counts.mu[k] = l.mu[k];
            st->counts.p_mu[k] = l.p_mu[k];
        }
    }
    if (!rc && kagi_raw_count(ra) != kagi_raw_count(rb))
        rc = kagi__err(KAGI_ERR_FORMAT, "%s holds %llu records, %s %llu: not the same detections",
                       pa, (unsigned long long)kagi_raw_count(ra), pb,
                       (unsigned long long)kagi_raw_count(rb));
    if (!rc && kagi_raw_count(ra) > SIZE_MAX / 2)
        rc = kagi__err(KAGI_ERR_FORMAT, "%s: %llu records do not fit in memory", pa,
                       (unsigned long long)kagi_raw_count(ra));
    if (!rc) rc = kagi_bits_new(&wa, (size_t)kagi_raw_count(ra));
    if (!rc) rc = kagi_bits_new(&wb, (size_t)kagi_raw_count(ra));
    if (!rc) rc = kagi__sift(ra, rb, pa, pb, wa, wb, st);
    kagi_raw_free(ra);
    kagi_raw_free(rb);
    st->qber_z = st->sifted_z ? (double)st->errors_z / (double)st->sifted_z : 0;
    if (!rc && st->sifted_x == 0)
        rc = kagi__err(KAGI_ERR_SHORT, "%s: no pulse measured in the key basis by both", pa);
    if (!rc) rc = kagi_bits_new(ka, (size_t)st->sifted_x);
    if (!rc) rc = kagi_bits_new(kb, (size_t)st->sifted_x);
    if (!rc) {
        memcpy((*ka)->w, wa->w, KAGI_WORDS((*ka)->n) * 8);
        memcpy((*kb)->w, wb->w, KAGI_WORDS((*kb)->n) * 8);
    }
    kagi_bits_free(wa); /* wiped */
    kagi_bits_free(wb);
    return rc;
}

int kagi_sift_raw(const char *alice_path, const char *bob_path, kagi_bits **ka, kagi_bits **kb,
                  kagi_sift_stats *st)
{
    *ka = *kb = NULL;
    int rc = kagi__sift_pass(alice_path, bob_path, ka, kb, st);
    if (rc) {
        kagi_bits_free(*ka);
        kagi_bits_free(*kb);
        *ka = *kb = NULL;
    }
    return rc;
}
