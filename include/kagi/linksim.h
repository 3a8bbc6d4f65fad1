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

/* Zero the struct before filling it: fields added later default to 0. */
typedef struct kagi_linksim {
    kagi_link link;       /* source, fibre and detector (kagi/keyrate.h) */
    uint64_t pulses;      /* pulses to send, 1 to 2^60 */
    uint64_t seed;        /* the same seed gives the same files */
    double eve;           /* fraction of pulses an intercept-resend
                             eavesdropper measures and resends, in [0, 1] */
    /* Optional: called after each megabyte of records (some 10^5
     * detections) and once at the end with the pulses simulated so far;
     * NULL for none. */
    void (*progress)(void *ctx, uint64_t done, uint64_t pulses);
    void *progress_ctx;
} kagi_linksim;

/* Counts of one run. Sifted counts are over records whose two bases agree
 * (X = 0, the key basis; Z = 1, the test basis), errors where the bits
 * then differ; afterpulse clicks are counted in all but dark_only. */
typedef struct kagi_linksim_stats {
    uint64_t pulses, detections;
    uint64_t by_class[3];     /* detections per intensity class */
    uint64_t sifted_x, sifted_z, errors_x, errors_z; /* matching bases */
    uint64_t dark_only;       /* clicks from a dark count alone */
    uint64_t double_clicks;   /* photon and dark count in one gate */
    uint64_t afterpulses;     /* clicks from after-pulsing */
    uint64_t dead_pulses;     /* pulses that came while the detector was dead */
    uint64_t alice_bytes, bob_bytes; /* sizes of the two files */
    double seconds;           /* wall time of the whole call */
    double sample_seconds;    /* of which sampling and buffered writing
                                 (the rest: set-up, fsync, rename) */
} kagi_linksim_stats;

/* Simulate p->pulses pulses (docs/linksim.md) and write Alice's and Bob's
 * raw files (docs/raw-format.md) atomically: each is written under a
 * temporary name in its folder, synced and renamed, and on failure
 * neither path is created (a file already there is left as it was).
 * KAGI_ERR_ARG for bad parameters, naming the
 * field (kagi_link_check's rules, then pulses, eve and the dead time);
 * KAGI_ERR_IO naming the path. Cost: about 20 ns per detection. */
int kagi_linksim_run(const kagi_linksim *p, const char *alice_path, const char *bob_path,
                     kagi_linksim_stats *st) KAGI_NODISCARD KAGI_NONNULL(1, 2, 3, 4);

/* One detection as read back. basis 0 = X (key), 1 = Z (test); cls is the
 * intensity class 0..2 (signal, decoy, vacuum) on Alice's side, 0 on Bob's. */
typedef struct kagi_raw_rec {
    uint64_t index;
    uint8_t basis, bit, cls;
} kagi_raw_rec;

typedef struct kagi_raw_reader kagi_raw_reader;

/* Open a raw file and check its header (magic line, "key value" lines,
 * role alice or bob, pulses) and its trailer (record count and byte
 * length, which must match the file's size): a truncated, foreign or
 * damaged file is KAGI_ERR_FORMAT naming the path and what is wrong,
 * KAGI_ERR_IO one that cannot be read. Free *out with kagi_raw_free. */
int kagi_raw_open(const char *path, kagi_raw_reader **out) KAGI_NODISCARD KAGI_NONNULL(1, 2);
/* Header value for key ("role", "pulses", "seed", "distance_km", ...), or
 * NULL; the string lives as long as the reader. */
const char *kagi_raw_get(const kagi_raw_reader *r, const char *key) KAGI_NONNULL(1, 2);
/* The link parameters the file was simulated with (header keys; fields
 * the header does not carry are 0) and, if pulses is not NULL, the pulses
 * sent. KAGI_ERR_FORMAT naming the key that is missing or not a number. */
int kagi_raw_link(const kagi_raw_reader *r, kagi_link *l, uint64_t *pulses) KAGI_NODISCARD
    KAGI_NONNULL(1, 2);
/* Records in the file (from the trailer). */
uint64_t kagi_raw_count(const kagi_raw_reader *r) KAGI_NONNULL(1);
/* Next record, in increasing pulse order: *got 1 and rec filled, or *got 0
 * after the last. KAGI_ERR_FORMAT naming the path and record for a record
 * cut off, an index past the pulses sent, class 3, or bytes after the
 * last record. */
int kagi_raw_next(kagi_raw_reader *r, kagi_raw_rec *rec, int *got) KAGI_NODISCARD
    KAGI_NONNULL(1, 2, 3);
/* Close, wipe the buffered records (Bob's bits are raw key) and free;
 * accepts NULL. */
void kagi_raw_free(kagi_raw_reader *r);

#endif
