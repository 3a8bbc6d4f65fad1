/* Internals shared by the key store, the key sources and the KME daemon
 * (not installed). */
#ifndef KAGI_KMS_INTERNAL_H
#define KAGI_KMS_INTERNAL_H

#include <stdarg.h>
#include <stddef.h>
#include <time.h>
#include <stdint.h>

#include "internal.h"
#include "kagi/kms.h"

/* Logging: one line per event, "2026-01-02T03:04:05.678Z LEVEL message",
 * written with one write(2) so lines from threads never interleave. Never
 * pass key material. */
enum { KAGI__LOG_ERROR = 0, KAGI__LOG_WARN, KAGI__LOG_INFO, KAGI__LOG_DEBUG };
/* Log to fd (not closed by kagi) at levels up to level; default stderr,
 * KAGI__LOG_WARN. */
void kagi__log_setup(int fd, int level);
int kagi__log_level(void);
void kagi__log(int level, const char *fmt, ...) KAGI__PRINTF(2, 3);
/* Lines gathered by one thread and written with one write(2): a worker
   logs the deliveries of one store batch together. */
typedef struct kagi__logbuf {
    char b[32768];
    size_t n;
    long long sec;          /* second of the cached prefix */
    char prefix[80];        /* "2026-01-02T03:04:05." */
} kagi__logbuf;
void kagi__logbuf_add(kagi__logbuf *b, int level, const char *fmt, ...) KAGI__PRINTF(3, 4);
/* A message already formatted (a delivery's line, built without printf). */
void kagi__logbuf_text(kagi__logbuf *b, int level, const char *msg, size_t len);
void kagi__logbuf_flush(kagi__logbuf *b);
size_t kagi__log_vformat(char *line, size_t cap, int level, const char *fmt, va_list ap);
void kagi__log_raw(const char *s, size_t len);

/* write(2) and read(2) of n bytes, past EINTR and short counts (files.c):
 * kagi__fd_write_all gives 0, or -1 when a write failed; kagi__fd_read_full
 * the bytes read, fewer than n only at end of file or on an error. */
int kagi__fd_write_all(int fd, const void *p, size_t n);
size_t kagi__fd_read_full(int fd, void *p, size_t n);
#define KAGI__LOGGING(level) ((level) <= kagi__log_level())

/* Open-addressing map from key_ID to a row id (linear probing, backward
 * shift deletion): the store's in-memory index of issued keys. */
typedef struct kagi__idmap {
    uint8_t (*keys)[KAGI_KEY_ID_BYTES];
    int64_t *vals;      /* 0 marks an empty slot: row ids start at 1 */
    size_t cap, n;      /* cap a power of two */
} kagi__idmap;
int kagi__idmap_init(kagi__idmap *m, size_t cap_hint) KAGI_NODISCARD;
void kagi__idmap_free(kagi__idmap *m);
int kagi__idmap_put(kagi__idmap *m, const uint8_t id[KAGI_KEY_ID_BYTES], int64_t val) KAGI_NODISCARD;
int64_t kagi__idmap_get(const kagi__idmap *m, const uint8_t id[KAGI_KEY_ID_BYTES]);
int kagi__idmap_del(kagi__idmap *m, const uint8_t id[KAGI_KEY_ID_BYTES]);

/* The key store's least time between two commits' starts, s: the fixed
 * interval, or with pacing twice the mean fsync time (at most 0.7 ms),
 * whichever is longer. */
double kagi__commit_gap(unsigned interval_us, int pace, double fsync_avg);

#endif
