/* The raw-file writer that the link simulators share (not installed).
 *
 * A writer owns a temporary file next to its final path and a buffer of
 * pending bytes. The simulators append records straight into the buffer,
 * each after making sure KAGI__RAW_ROOM bytes are free (kagi__raw_put, or
 * kagi__leb128_put through a local write pointer on the gap sampler's
 * hot path), and flush when the buffer runs full. On
 * success kagi__raw_finish writes the trailer, syncs and closes, and
 * kagi__raw_commit renames both files into place; on failure
 * kagi__raw_abort removes the temporary file. The format is in
 * docs/raw-format.md. */
#ifndef KAGI_RAW_INTERNAL_H
#define KAGI_RAW_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "kagi/linksim.h"

#define KAGI__RAW_MAGIC "kagi-raw 1\n"
#define KAGI__RAW_END "kagi-end"     /* last 8 bytes of every file */
#define KAGI__RAW_TRAILER 24         /* count, record bytes, KAGI__RAW_END */
#define KAGI__RAW_HEADER_MAX 16384   /* header bytes, "end\n" included */
#define KAGI__RAW_ROOM 32            /* free bytes needed to put one record */
#define KAGI__RAW_BUF (1u << 20)     /* writer buffer */
/* Pulse indices stay below 2^60 so that gap << 4 fits in 64 bits. */
#define KAGI__RAW_MAX_PULSES ((uint64_t)1 << 60)

enum { KAGI__ROLE_ALICE = 0, KAGI__ROLE_BOB = 1 };

typedef struct kagi__raw_writer {
    uint8_t *buf;          /* KAGI__RAW_BUF bytes */
    size_t len;            /* pending bytes in buf */
    uint64_t next;         /* index of the last record + 1 (0 before any) */
    uint64_t count;        /* records put */
    uint64_t head_bytes;   /* header length */
    uint64_t file_bytes;   /* bytes written to the file so far */
    unsigned flag_bits;    /* 4 for Alice (basis, bit, class), 2 for Bob */
    int fd;
    const char *path;      /* final path (borrowed) */
    char *tmp;             /* temporary path, owned */
} kagi__raw_writer;

/* Create the temporary file for role and put the header (all of p's
 * parameters; sampler names the method). KAGI_ERR_IO naming path. */
int kagi__raw_create(kagi__raw_writer *w, const char *path, int role, const kagi_linksim *p,
                     const char *sampler);
/* Write the pending bytes out. */
int kagi__raw_flush(kagi__raw_writer *w);
/* Flush, append the trailer, fsync and close; the file keeps its
 * temporary name until kagi__raw_commit. */
int kagi__raw_finish(kagi__raw_writer *w);
/* Rename both finished files into place; if the second rename fails the
 * first file is removed again, so either both paths are new or neither. */
int kagi__raw_commit(kagi__raw_writer *a, kagi__raw_writer *b);
/* Close (if open) and remove the temporary file, free and wipe the buffer.
 * Safe on a zeroed writer and after commit. */
void kagi__raw_abort(kagi__raw_writer *w);

/* Unsigned LEB128 of v into d (which has KAGI__RAW_ROOM bytes free);
 * returns the byte count. Values below 2^28 (gaps below 2^24 pulses)
 * take a branch-free path: the four seven-bit groups are spread over four
 * bytes with shifts and masks, the continuation bits of all but the last
 * byte come from a table by bit length, and all four bytes are stored. */
static inline size_t kagi__leb128_put(uint8_t *d, uint64_t v)
{
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    if (__builtin_expect(v < ((uint64_t)1 << 28), 1)) {
        /* By leading zeros of v | 1 as 32 bits: bytes, continuation bits. */
        static const uint8_t len[32] = {0, 0, 0, 0, 4, 4, 4, 4, 4, 4, 4, 3, 3, 3, 3, 3,
                                        3, 3, 2, 2, 2, 2, 2, 2, 2, 1, 1, 1, 1, 1, 1, 1};
        static const uint32_t cont[5] = {0, 0, 0x80, 0x8080, 0x808080};
        uint32_t w = (uint32_t)v;
        unsigned n = len[__builtin_clz(w | 1)];
        uint32_t x = (w & 0x7f) | (w << 1 & 0x7f00) | (w << 2 & 0x7f0000) | (w << 3 & 0x7f000000);
        x |= cont[n];
        memcpy(d, &x, 4);
        return n;
    }
#endif
    size_t n = 0;
    while (v >= 0x80) {
        d[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    d[n++] = (uint8_t)v;
    return n;
}

/* Append the record of pulse index (> the previous one, or the first) with
 * its flags (basis | bit << 1 | class << 2; Bob: basis | bit << 1). */
static inline void kagi__raw_put(kagi__raw_writer *w, uint64_t index, unsigned flags)
{
    uint64_t v = ((index - w->next) << w->flag_bits) | flags;
    w->len += kagi__leb128_put(w->buf + w->len, v);
    w->count++;
    w->next = index + 1;
}

#endif
