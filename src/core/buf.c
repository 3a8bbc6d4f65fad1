/* Capped growable buffers and bounded readers (little-endian integers). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "kagi/buf.h"

void kagi_buf_init(kagi_buf *b, size_t limit)
{
    memset(b, 0, sizeof *b);
    b->limit = limit;
}

void kagi_buf_free(kagi_buf *b)
{
    kagi__wipe(b->p, b->cap);
    free(b->p);
    size_t limit = b->limit;
    kagi_buf_init(b, limit);
}

void kagi_buf_reset(kagi_buf *b)
{
    b->len = 0;
    b->err = 0;
}

uint8_t *kagi_buf_grow(kagi_buf *b, size_t len)
{
    if (b->err) return NULL;
    if (len > b->limit || b->len > b->limit - len) {
        b->err = kagi__err(KAGI_ERR_ARG, "message would exceed its cap of %zu bytes", b->limit);
        return NULL;
    }
    if (b->len + len > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + len) cap *= 2;
        if (cap > b->limit) cap = b->limit;
        uint8_t *p = malloc(cap);
        if (!p) {
            b->err = kagi__err(KAGI_ERR_NOMEM, "cannot grow message to %zu bytes", cap);
            return NULL;
        }
        if (b->len) memcpy(p, b->p, b->len);
        kagi__wipe(b->p, b->cap);
        free(b->p);
        b->p = p;
        b->cap = cap;
    }
    uint8_t *at = b->p + b->len;
    b->len += len;
    return at;
}

void kagi_buf_put(kagi_buf *b, const void *data, size_t len)
{
    uint8_t *at = kagi_buf_grow(b, len);
    if (at && len) memcpy(at, data, len);
}

void kagi_buf_printf(kagi_buf *b, const char *fmt, ...)
{
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n < sizeof tmp) {
        kagi_buf_put(b, tmp, (size_t)n);
        return;
    }
    /* longer than the stack buffer: format again into the buffer itself */
    uint8_t *at = kagi_buf_grow(b, (size_t)n + 1);
    if (!at) return;
    va_start(ap, fmt);
    vsnprintf((char *)at, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len--; /* drop the NUL */
}

void kagi_buf_u8(kagi_buf *b, uint8_t v) { kagi_buf_put(b, &v, 1); }

void kagi_buf_u32(kagi_buf *b, uint32_t v)
{
    uint8_t t[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    kagi_buf_put(b, t, 4);
}

void kagi_buf_u64(kagi_buf *b, uint64_t v)
{
    kagi_buf_u32(b, (uint32_t)v);
    kagi_buf_u32(b, (uint32_t)(v >> 32));
}

const uint8_t *kagi_rd_take(kagi_rd *r, size_t len)
{
    if (r->err || len > r->len - r->off) {
        r->err = 1;
        return NULL;
    }
    const uint8_t *p = r->p + r->off;
    r->off += len;
    return p;
}

uint8_t kagi_rd_u8(kagi_rd *r)
{
    const uint8_t *p = kagi_rd_take(r, 1);
    return p ? p[0] : 0;
}

uint32_t kagi_rd_u32(kagi_rd *r)
{
    const uint8_t *p = kagi_rd_take(r, 4);
    return p ? (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24 : 0;
}

uint64_t kagi_rd_u64(kagi_rd *r)
{
    uint64_t lo = kagi_rd_u32(r);
    return lo | (uint64_t)kagi_rd_u32(r) << 32;
}
