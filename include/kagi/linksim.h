/* kagi/linksim.h: event-level Monte Carlo of one fibre QKD link, and the
 * raw detection files it writes.
 *
 * The simulator draws the gap to the next click instead of every pulse, so
 * its cost grows with detections, not pulses. Each party's file holds one
 * record per pulse that Bob detected (Alice keeps those after Bob announces
 * his clicks): the pulse index, the basis, the bit and, on Alice's side,
 * the intensity class. The format is in docs/raw-format.md. */
#ifndef KAGI_LINKSIM_H
#define KAGI_LINKSIM_H

#include <stddef.h>
#include <stdint.h>

#include "kagi/bits.h"
#include "kagi/keyrate.h"

typedef struct kagi_linksim {
    kagi_link link;       /* source, fibre and detector (kagi/keyrate.h) */
    uint64_t pulses;      /* pulses to send */
    uint64_t seed;        /* the same seed gives the same files */
    double eve;           /* fraction of pulses an intercept-resend
                             eavesdropper measures and resends, in [0, 1] */
} kagi_linksim;

typedef struct kagi_linksim_stats {
    uint64_t pulses, detections;
    uint64_t by_class[3];     /* detections per intensity class */
    uint64_t sifted_x, sifted_z, errors_x, errors_z; /* matching bases */
    uint64_t dark_only, double_clicks, afterpulses, dead_time_misses;
    double seconds;           /* wall time of the simulation */
} kagi_linksim_stats;

/* Simulate and write both files atomically (nothing is left behind on
 * failure). KAGI_ERR_ARG for bad parameters, naming the field. */
int kagi_linksim_run(const kagi_linksim *p, const char *alice_path, const char *bob_path,
                     kagi_linksim_stats *st) KAGI_NODISCARD KAGI_NONNULL(1, 2, 3);

/* One detection as read back. basis 0 = X (key), 1 = Z (test); cls is the
 * intensity class 0..2 (signal, decoy, vacuum) on Alice's side, 0 on Bob's. */
typedef struct kagi_raw_rec {
    uint64_t index;
    uint8_t basis, bit, cls;
} kagi_raw_rec;

typedef struct kagi_raw_reader kagi_raw_reader;

/* Open a raw file and check its header and trailer (a truncated or foreign
 * file is KAGI_ERR_FORMAT naming the path and what is wrong). */
int kagi_raw_open(const char *path, kagi_raw_reader **out) KAGI_NODISCARD KAGI_NONNULL(1, 2);
/* Header value for key ("role", "pulses", "distance_km", ...), or NULL. */
const char *kagi_raw_get(const kagi_raw_reader *r, const char *key);
/* The link parameters the file was simulated with (header keys). */
int kagi_raw_link(const kagi_raw_reader *r, kagi_link *l, uint64_t *pulses) KAGI_NODISCARD;
uint64_t kagi_raw_count(const kagi_raw_reader *r);
/* Next record: *got 1 and rec filled, or *got 0 at the end. */
int kagi_raw_next(kagi_raw_reader *r, kagi_raw_rec *rec, int *got) KAGI_NODISCARD;
void kagi_raw_free(kagi_raw_reader *r);

#endif
