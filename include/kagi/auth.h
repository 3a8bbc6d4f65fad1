/* kagi/auth.h: information-theoretic authentication and key verification.
 *
 * Both rest on one polynomial hash. A message is a bit string (bytes are
 * read as bit j = (byte[j>>3] >> (j&7)) & 1, as in kagi/bits.h), cut into
 * b-bit blocks m_1..m_s (the last one zero-padded) and followed by one
 * block holding the message length in bits. With field element H:
 *
 *     poly_H(m) = m_1 H^(s+1) + m_2 H^s + ... + m_s H^2 + len H
 *
 * For two distinct messages of at most L blocks each (length block
 * included) and any constant c, poly_H(m) - poly_H(m') - c is a non-zero
 * polynomial in H of degree <= L (distinct lengths differ in the length
 * block; every term has a factor H, so c cannot cancel it). It has at most
 * L roots: over a uniform H, Pr[poly_H(m) - poly_H(m') = c] <= L / 2^b.
 *
 * Field elements are two (or one) little-endian words: bit i of word 0 is
 * the coefficient of x^i, bit i of word 1 that of x^(64+i). This is the
 * plain, non-reflected order (not the one of GCM's GHASH). Byte strings of
 * field elements and tags are the words in little-endian byte order. */
#ifndef KAGI_AUTH_H
#define KAGI_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include "kagi/bits.h"

/* ---- Fields ------------------------------------------------------------ */

/* r = a * b in GF(2^128) = GF(2)[x] / (x^128 + x^7 + x^2 + x + 1), with
 * PCLMUL when compiled for it. r may alias a or b. */
void kagi_gf128_mul(uint64_t r[2], const uint64_t a[2], const uint64_t b[2]);
/* The same by shift-and-add, one bit at a time: the reference for tests. */
void kagi_gf128_mul_ref(uint64_t r[2], const uint64_t a[2], const uint64_t b[2]);
/* a * b in GF(2^64) = GF(2)[x] / (x^64 + x^4 + x^3 + x + 1), and its
 * bit-by-bit reference. */
uint64_t kagi_gf64_mul(uint64_t a, uint64_t b);
uint64_t kagi_gf64_mul_ref(uint64_t a, uint64_t b);

/* ---- Polynomial hash ----------------------------------------------------- */

/* poly_H over GF(2^128) of len bytes (msg may be NULL when len is 0). */
void kagi_polyhash128(const uint64_t h[2], const void *msg, size_t len, uint64_t out[2]);
/* poly_H over GF(2^128) of the first nbits bits of w (bits past nbits in
 * the last word are ignored). Equals kagi_polyhash128 on the same bits. */
void kagi_polyhash128_bits(const uint64_t h[2], const uint64_t *w, size_t nbits,
                           uint64_t out[2]);
/* poly_H over GF(2^64), 64-bit blocks, of the first nbits bits of w. */
uint64_t kagi_polyhash64_bits(uint64_t h, const uint64_t *w, size_t nbits);
/* Collision bound of poly_H for two distinct messages of at most nbits
 * bits over GF(2^field_bits) (64 or 128): (ceil(nbits/field_bits) + 1) /
 * 2^field_bits. 1.0 (no guarantee) for another field size. */
double kagi_polyhash_bound(size_t nbits, unsigned field_bits);

/* ---- Key pool ------------------------------------------------------------ */

/* Pre-shared secret bits handed out in order, each bit at most once. The
 * bits given out are wiped from the pool at once. */
typedef struct kagi_keypool kagi_keypool;

/* Copy the first nbits bits of bits (nbits may be 0) into a new pool. */
int kagi_keypool_new(kagi_keypool **out, const uint64_t *bits, size_t nbits)
    KAGI_NODISCARD KAGI_NONNULL(1, 2);
/* Wipe and free; accepts NULL. */
void kagi_keypool_free(kagi_keypool *p);
/* Write the next nbits bits into out (ceil(nbits/8) bytes, bit j of out as
 * in kagi/bits.h, bits past nbits in the last byte zero) and mark them
 * used. KAGI_ERR_EXHAUSTED, with nothing taken, when fewer are left; the
 * detail says how many were needed and left. */
int kagi_keypool_take(kagi_keypool *p, void *out, size_t nbits) KAGI_NODISCARD KAGI_NONNULL(1);
size_t kagi_keypool_used(const kagi_keypool *p) KAGI_NONNULL(1);
size_t kagi_keypool_left(const kagi_keypool *p) KAGI_NONNULL(1);
/* A new vector (freed with kagi_bits_free) holding the bits not yet taken,
 * in order, so the caller can write them back to the key file. */
int kagi_keypool_remainder(const kagi_keypool *p, kagi_bits **out) KAGI_NODISCARD KAGI_NONNULL(1, 2);

/* ---- Wegman-Carter MAC ---------------------------------------------------- */

/* One direction of an authenticated channel: tag = poly_H(msg) XOR pad,
 * with a 128-bit hash key H taken once and a fresh 128-bit one-time pad
 * per message, both from a pool. The sender calls only kagi_mac_tag, the
 * receiver only kagi_mac_check, each with its own mac over a pool holding
 * the same bits; message k (counting from 1) uses pad k on both sides, so
 * a replayed, dropped or reordered message fails. H is reused, so a
 * forger's chance adds up over attempts (kagi_mac_epsilon each): end the
 * session at the first KAGI_ERR_AUTH. */
typedef struct kagi_mac kagi_mac;

/* Take H (128 bits) from pool. The pool is borrowed: it must outlive the
 * mac, and the mac is its only user while they live. */
int kagi_mac_new(kagi_mac **out, kagi_keypool *pool) KAGI_NODISCARD KAGI_NONNULL(1, 2);
/* Wipe and free; accepts NULL. The pool stays with the caller. */
void kagi_mac_free(kagi_mac *m);
/* Tag the next message (msg may be NULL when len is 0); consumes 128 bits.
 * KAGI_ERR_EXHAUSTED when the pool has fewer left (no tag written). */
int kagi_mac_tag(kagi_mac *m, const void *msg, size_t len, uint8_t tag[16])
    KAGI_NODISCARD KAGI_NONNULL(1, 4);
/* Check the next received message; consumes 128 bits whether it matches
 * or not. KAGI_ERR_AUTH ("message N: tag mismatch") when the tag is wrong,
 * compared in constant time. */
int kagi_mac_check(kagi_mac *m, const void *msg, size_t len, const uint8_t tag[16])
    KAGI_NODISCARD KAGI_NONNULL(1, 4);
/* Take in a message sent without a tag of its own: the next tag (or check)
 * covers it and every other message absorbed since the previous tag, in
 * order, with the bound kagi_mac_epsilon of their total length. Costs no
 * key bits. Sender and receiver must absorb the same messages. */
int kagi_mac_absorb(kagi_mac *m, const void *msg, size_t len) KAGI_NONNULL(1);
/* Secret bits used so far: 128 for H plus 128 per tag. */
size_t kagi_mac_bits_consumed(const kagi_mac *m) KAGI_NONNULL(1);
/* Forgery bound for one message of len bytes: (ceil(len/16) + 1) / 2^128. */
double kagi_mac_epsilon(size_t len);

/* ---- Verification of a reconciled key ------------------------------------ */

/* Tag of the first nbits bits of key with public hash key hkey, which
 * Alice draws at random after reconciliation and sends with her tag.
 * tag_bits 128: poly_H over GF(2^128), H = hkey, all 16 tag bytes.
 * tag_bits 64: poly_H over GF(2^64) with H = the first 8 bytes of hkey;
 * tag bytes 8..15 are zero. Truncating a GF(2^128) hash would not keep a
 * L/2^64 bound, hence the separate field. Each tag bit is public and counts
 * as leaked about the key (see docs/security.md). KAGI_ERR_ARG for tag_bits
 * other than 64 or 128 or an empty key. */
int kagi_verify_tag(const uint64_t *key, size_t nbits, const uint8_t hkey[16],
                    unsigned tag_bits, uint8_t tag[16]) KAGI_NODISCARD KAGI_NONNULL(1, 3, 5);
/* eps_cor of the check: probability that two different keys of nbits bits
 * get equal tags, (ceil(nbits/tag_bits) + 1) / 2^tag_bits; 1.0 for an
 * unsupported tag_bits. */
double kagi_verify_epsilon(size_t nbits, unsigned tag_bits);
/* Smallest of 64 and 128 whose kagi_verify_epsilon is <= eps_cor; 0 when
 * neither is. */
unsigned kagi_verify_tag_bits_for(size_t nbits, double eps_cor);

#endif
