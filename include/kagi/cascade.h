/* kagi/cascade.h: interactive reconciliation by Cascade.
 *
 * Alice (holder of the reference key) and Bob (who corrects his key) are
 * two message-driven state machines; they share nothing but the bytes the
 * caller carries between them, so the same code runs over an in-memory
 * queue or a TCP connection. Bob drives: kagi_cascade_bob_start() makes the
 * first message, then each answer from Alice gives Bob's next message until
 * Bob reports done. Alice answers every message from Bob with exactly one.
 *
 * The key is cut into frames (default 2^20 bits) that are all reconciled
 * at once: every message carries the queries of every unfinished frame, so
 * round trips are shared and do not bound throughput.
 *
 * The variant (see docs/cascade.md): pass 1 on contiguous blocks of k1 bits,
 * passes 2 and 3 on blocks of 4*k1 and 16*k1 bits of fast pseudo-random
 * bit permutations, then
 * BICONF-style passes that each split the frame into a random half and its
 * complement; every correction cascades into all started passes; every
 * disclosed parity is kept and reused (a sub-block parity known on one side
 * of a split gives the other side for free); sub-blocks that hold no key
 * bits are never asked about. Leakage counts each parity bit Alice
 * discloses about her key. */
#ifndef KAGI_CASCADE_H
#define KAGI_CASCADE_H

#include <stddef.h>
#include <stdint.h>

#include "kagi/bits.h"
#include "kagi/buf.h"

typedef struct kagi_cascade_params {
    double qber;          /* expected QBER (from estimation), in (0, 0.5) */
    size_t frame_bits;    /* 0: 2^20 */
    uint32_t k1;          /* pass-1 block size, a power of two; 0: from the QBER */
    uint32_t block_passes;/* passes on blocks, each 4x the last; 0: 3 */
    uint32_t extra_passes;/* random-half passes after pass 2; 0: default 14 */
    uint32_t waves;       /* pass-2 blocks are searched in this many waves; 0: 2 */
    uint64_t seed;        /* public seed for the permutations and halves */
} kagi_cascade_params;

typedef struct kagi_cascade_stats {
    size_t bits;            /* key bits reconciled */
    size_t frames;
    size_t corrected;       /* bits Bob flipped */
    size_t leak_bits;       /* parity bits of Alice's key disclosed */
    size_t channel_uses;    /* round trips (Bob message + Alice answer) */
    size_t bytes_bob, bytes_alice;  /* message bytes each way */
    uint32_t k1, block_passes, extra_passes;
} kagi_cascade_stats;

/* Fill in defaults (block sizes from the QBER) and check ranges. */
int kagi_cascade_params_resolve(kagi_cascade_params *p) KAGI_NODISCARD KAGI_NONNULL(1);

typedef struct kagi_cascade_alice kagi_cascade_alice;
typedef struct kagi_cascade_bob kagi_cascade_bob;

/* Alice keeps a reference to key (not a copy); it must outlive her. */
int kagi_cascade_alice_new(kagi_cascade_alice **out, const kagi_bits *key)
    KAGI_NODISCARD KAGI_NONNULL(1, 2);
void kagi_cascade_alice_free(kagi_cascade_alice *a);
/* Handle one message from Bob; the answer is written to out (reset first).
 * *finished becomes 1 after Bob's final message (then out is empty). */
int kagi_cascade_alice_handle(kagi_cascade_alice *a, const uint8_t *msg, size_t len,
                              kagi_buf *out, int *finished) KAGI_NODISCARD;

/* Bob corrects key in place; it must outlive him. */
int kagi_cascade_bob_new(kagi_cascade_bob **out, kagi_bits *key,
                         const kagi_cascade_params *p) KAGI_NODISCARD KAGI_NONNULL(1, 2, 3);
void kagi_cascade_bob_free(kagi_cascade_bob *b);
int kagi_cascade_bob_start(kagi_cascade_bob *b, kagi_buf *out) KAGI_NODISCARD;
/* Handle Alice's answer; writes Bob's next message to out. When *done is
 * set, out holds Bob's final message, which Alice must still receive. */
int kagi_cascade_bob_handle(kagi_cascade_bob *b, const uint8_t *msg, size_t len,
                            kagi_buf *out, int *done) KAGI_NODISCARD;
void kagi_cascade_bob_stats(const kagi_cascade_bob *b, kagi_cascade_stats *s);

/* Both parties in one process over an in-memory queue; a convenience for
 * tests, benchmarks and the simulator. alice is read, bob corrected. */
int kagi_cascade_run(const kagi_bits *alice, kagi_bits *bob, const kagi_cascade_params *p,
                     kagi_cascade_stats *stats) KAGI_NODISCARD;

#endif
