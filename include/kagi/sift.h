/* kagi/sift.h: sifting of raw detection records (kagi/linksim.h files).
 *
 * After Bob announces which pulses clicked and both announce their bases
 * (and Alice the intensity class of each pulse), the pulses both measured
 * in the X basis form the sifted key; those both measured in Z are all
 * published to estimate the errors of each intensity class, which the
 * decoy-state bound (kagi_decoy_bound_lim) turns into a bound on what Eve
 * knows of the X bits. Pulses measured in different bases are dropped. */
#ifndef KAGI_SIFT_H
#define KAGI_SIFT_H

#include <stddef.h>
#include <stdint.h>

#include "kagi/bits.h"
#include "kagi/keyrate.h"

typedef struct kagi_sift_stats {
    uint64_t pulses;          /* pulses Alice sent (her file's header) */
    uint64_t detections;      /* records in each file */
    uint64_t sifted_x;        /* key bits */
    uint64_t sifted_z, errors_z; /* test bits and their errors, all classes */
    uint64_t dropped;         /* bases differ */
    double qber_z;            /* errors_z / sifted_z (0 when no test bits) */
    kagi_decoy_counts counts; /* per class, with Alice's mu and p_mu */
} kagi_sift_stats;

/* Sift the pair of raw files into *ka and *kb (sifted_x bits each, in pulse
 * order; free with kagi_bits_free) and fill st. The files must hold the
 * same pulses in the same order, Alice's with role alice: anything else is
 * KAGI_ERR_FORMAT naming the file and record. On failure *ka and *kb are
 * NULL. */
int kagi_sift_raw(const char *alice_path, const char *bob_path, kagi_bits **ka, kagi_bits **kb,
                  kagi_sift_stats *st) KAGI_NODISCARD KAGI_NONNULL(1, 2, 3, 4, 5);

#endif
