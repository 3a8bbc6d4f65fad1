/* kagi/buf.h: growable byte buffers with a hard cap, and a bounded reader.
 *
 * Every message on the classical channel is built in a kagi_buf and parsed
 * with a kagi_rd, so a peer can never make kagi read past what it sent or
 * grow memory past the cap. */
#ifndef KAGI_BUF_H
#define KAGI_BUF_H

#include <stddef.h>
#include <stdint.h>

typedef struct kagi_buf {
    uint8_t *p;
    size_t len, cap;
    size_t limit;   /* appending past this fails with KAGI_ERR_ARG */
    int err;        /* sticky: first failure, checked once at the end */
} kagi_buf;

void kagi_buf_init(kagi_buf *b, size_t limit);
/* Wipes (messages may carry parities) and frees; the buffer stays usable. */
void kagi_buf_free(kagi_buf *b);
void kagi_buf_reset(kagi_buf *b);
void kagi_buf_put(kagi_buf *b, const void *data, size_t len);
void kagi_buf_u8(kagi_buf *b, uint8_t v);
void kagi_buf_u32(kagi_buf *b, uint32_t v);
void kagi_buf_u64(kagi_buf *b, uint64_t v);
/* Reserve len bytes at the end and return them (NULL after a failure). */
uint8_t *kagi_buf_grow(kagi_buf *b, size_t len);
/* Append printf-formatted text (no NUL), whatever its length. */
void kagi_buf_printf(kagi_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

typedef struct kagi_rd {
    const uint8_t *p;
    size_t len, off;
    int err;        /* sticky: set when a read runs past the end */
} kagi_rd;

static inline void kagi_rd_init(kagi_rd *r, const void *p, size_t len)
{
    r->p = p;
    r->len = len;
    r->off = 0;
    r->err = 0;
}
uint8_t kagi_rd_u8(kagi_rd *r);
uint32_t kagi_rd_u32(kagi_rd *r);
uint64_t kagi_rd_u64(kagi_rd *r);
/* Pointer to the next len bytes, or NULL (and err set) if fewer remain. */
const uint8_t *kagi_rd_take(kagi_rd *r, size_t len);

#endif
