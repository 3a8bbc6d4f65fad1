/* Raw detection files: the writer the link simulators use and the reader
 * that sifting uses. Layout (docs/raw-format.md): a text header of
 * "key value" lines ending in "end", then one LEB128 number per record,
 * (index gap << flag bits) | flags, then a 24-byte trailer (record count,
 * record bytes, "kagi-end"), so a truncated file fails at open. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"
#include "kagi/linksim.h"
#include "kagi/version.h"
#include "raw_internal.h"

static const char *const kagi__role_name[2] = {"alice", "bob"};

static void kagi__le64_put(uint8_t *d, uint64_t v)
{
    for (int i = 0; i < 8; i++) d[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t kagi__le64_get(const uint8_t *s)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v |= (uint64_t)s[i] << (8 * i);
    return v;
}

/* ---- writer ---------------------------------------------------------- */

/* Write all of len bytes (retrying short writes and EINTR). */
static int kagi__write_all(int fd, const uint8_t *p, size_t len, const char *path)
{
    while (len) {
        ssize_t r = write(fd, p, len);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0)
            return kagi__err(KAGI_ERR_IO, "%s: write failed: %s", path,
                             r < 0 ? strerror(errno) : "no progress");
        p += r;
        len -= (size_t)r;
    }
    return KAGI_OK;
}

/* The link fields a header carries after mu and p_mu, in order. */
static const struct {
    const char *key;
    size_t off;
} kagi__link_keys[] = {
    {"p_x", offsetof(kagi_link, p_x)},
    {"send_prob", offsetof(kagi_link, send_prob)},
    {"clock_hz", offsetof(kagi_link, clock_hz)},
    {"distance_km", offsetof(kagi_link, distance_km)},
    {"fiber_loss_db_km", offsetof(kagi_link, fiber_loss_db_km)},
    {"extra_loss_db", offsetof(kagi_link, extra_loss_db)},
    {"misalignment", offsetof(kagi_link, misalignment)},
    {"det_eff", offsetof(kagi_link, det_eff)},
    {"dark_count", offsetof(kagi_link, dark_count)},
    {"afterpulse", offsetof(kagi_link, afterpulse)},
    {"dead_time_s", offsetof(kagi_link, dead_time_s)},
    {"f_ec", offsetof(kagi_link, f_ec)},
    {"eps_sec", offsetof(kagi_link, eps_sec)},
    {"eps_cor", offsetof(kagi_link, eps_cor)},
};

/* Appends to a header under construction; overflow is sticky. */
typedef struct kagi__hdr {
    char *p;
    size_t len, cap;
    int full;
} kagi__hdr;

static void kagi__hdr_add(kagi__hdr *h, const char *fmt, ...) KAGI__PRINTF(2, 3);
static void kagi__hdr_add(kagi__hdr *h, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = h->full ? -1 : vsnprintf(h->p + h->len, h->cap - h->len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= h->cap - h->len) h->full = 1;
    else h->len += (size_t)n;
}

/* %g, or with as many more digits as v needs to read back exactly (0.1,
 * not 0.10000000000000001; 50, not 5e+01). */
static const char *kagi__dbl(char buf[32], double v)
{
    for (int prec = 6; prec <= 17; prec++) {
        snprintf(buf, 32, "%.*g", prec, v);
        if (strtod(buf, NULL) == v) break;
    }
    return buf;
}

/* "key v" or "key v0 v1 v2" with each value exact. */
static void kagi__hdr_dbl(kagi__hdr *h, const char *key, const double *v, int n)
{
    char b[32];
    kagi__hdr_add(h, "%s", key);
    for (int i = 0; i < n; i++) kagi__hdr_add(h, " %s", kagi__dbl(b, v[i]));
    kagi__hdr_add(h, "\n");
}

/* The header: every parameter of the run, one "key value" line each, in
 * the order docs/raw-format.md lists. Returns its length, or 0 if it does
 * not fit in cap bytes. */
static size_t kagi__raw_header(char *out, size_t cap, int role, const kagi_linksim *p,
                               const char *sampler)
{
    const kagi_link *l = &p->link;
    kagi__hdr h = {out, 0, cap, 0};
    kagi__hdr_add(&h, KAGI__RAW_MAGIC "role %s\npulses %" PRIu64 "\nseed %" PRIu64 "\n",
                  kagi__role_name[role], p->pulses, p->seed);
    kagi__hdr_dbl(&h, "eve", &p->eve, 1);
    kagi__hdr_add(&h, "sampler %s\ngenerator kagi %s\n", sampler, KAGI_VERSION);
    kagi__hdr_dbl(&h, "mu", l->mu, 3);
    kagi__hdr_dbl(&h, "p_mu", l->p_mu, 3);
    for (size_t i = 0; i < sizeof kagi__link_keys / sizeof kagi__link_keys[0]; i++)
        kagi__hdr_dbl(&h, kagi__link_keys[i].key,
                      (const double *)(const void *)((const char *)l + kagi__link_keys[i].off), 1);
    kagi__hdr_add(&h, "end\n");
    return h.full ? 0 : h.len;
}

int kagi__raw_create(kagi__raw_writer *w, const char *path, int role, const kagi_linksim *p,
                     const char *sampler)
{
    memset(w, 0, sizeof *w);
    w->fd = -1;
    w->path = path;
    w->flag_bits = role == KAGI__ROLE_ALICE ? 4 : 2;
    size_t len = strlen(path);
    w->tmp = malloc(len + 16);
    w->buf = malloc(KAGI__RAW_BUF);
    if (!w->tmp || !w->buf) {
        kagi__raw_abort(w);
        return kagi__err(KAGI_ERR_NOMEM, "%s: cannot allocate the write buffer", path);
    }
    memcpy(w->tmp, path, len);
    memcpy(w->tmp + len, ".tmp.XXXXXX", 12);
    w->fd = mkostemp(w->tmp, O_CLOEXEC);
    if (w->fd < 0) {
        int e = errno;
        free(w->tmp); /* nothing was created: keep abort from unlinking */
        w->tmp = NULL;
        kagi__raw_abort(w);
        return kagi__err(KAGI_ERR_IO, "%s: cannot create: %s", path, strerror(e));
    }
    /* Bob's bits are raw key material: readable by the owner only. */
    (void)fchmod(w->fd, 0600);
    w->len = w->head_bytes = kagi__raw_header((char *)w->buf, KAGI__RAW_HEADER_MAX, role, p, sampler);
    if (!w->len) {
        kagi__raw_abort(w);
        return kagi__err(KAGI_ERR_ARG, "%s: header longer than %d bytes", path,
                         KAGI__RAW_HEADER_MAX);
    }
    return KAGI_OK;
}

int kagi__raw_flush(kagi__raw_writer *w)
{
    int rc = kagi__write_all(w->fd, w->buf, w->len, w->path);
#ifdef SYNC_FILE_RANGE_WRITE
    /* Start writing this chunk to disk now, while the simulation goes on,
     * so that the final fsync has little left to wait for. A hint only:
     * its failure changes nothing (fsync still reports real errors). */
    if (rc == KAGI_OK && w->len)
        (void)sync_file_range(w->fd, (off_t)w->file_bytes, (off_t)w->len, SYNC_FILE_RANGE_WRITE);
#endif
    w->file_bytes += w->len;
    w->len = 0;
    return rc;
}

int kagi__raw_finish(kagi__raw_writer *w)
{
    uint8_t *t = w->buf + w->len;
    if (KAGI__RAW_BUF - w->len < KAGI__RAW_TRAILER) {
        KAGI__TRY(kagi__raw_flush(w));
        t = w->buf;
    }
    kagi__le64_put(t, w->count);
    kagi__le64_put(t + 8, w->file_bytes + (uint64_t)(t - w->buf) - w->head_bytes);
    memcpy(t + 16, KAGI__RAW_END, 8);
    w->len += KAGI__RAW_TRAILER;
    KAGI__TRY(kagi__raw_flush(w));
    if (fsync(w->fd) != 0)
        return kagi__err(KAGI_ERR_IO, "%s: fsync failed: %s", w->path, strerror(errno));
    int fd = w->fd;
    w->fd = -1;
    if (close(fd) != 0)
        return kagi__err(KAGI_ERR_IO, "%s: close failed: %s", w->path, strerror(errno));
    return KAGI_OK;
}

int kagi__raw_commit(kagi__raw_writer *a, kagi__raw_writer *b)
{
    if (rename(a->tmp, a->path) != 0)
        return kagi__err(KAGI_ERR_IO, "%s: cannot rename into place: %s", a->path,
                         strerror(errno));
    free(a->tmp);
    a->tmp = NULL;
    if (rename(b->tmp, b->path) != 0) {
        int e = errno;
        unlink(a->path);
        return kagi__err(KAGI_ERR_IO, "%s: cannot rename into place: %s", b->path, strerror(e));
    }
    free(b->tmp);
    b->tmp = NULL;
    return KAGI_OK;
}

void kagi__raw_abort(kagi__raw_writer *w)
{
    if (w->fd >= 0) close(w->fd);
    w->fd = -1;
    if (w->tmp) unlink(w->tmp);
    free(w->tmp);
    w->tmp = NULL;
    if (w->buf) kagi__wipe(w->buf, KAGI__RAW_BUF);
    free(w->buf);
    w->buf = NULL;
}

/* ---- reader ---------------------------------------------------------- */

#define KAGI__RD_BUF (1u << 16)
#define KAGI__MAX_KEYS 64

struct kagi_raw_reader {
    char *path;
    int fd;
    char *header;                 /* copy of the header, lines split at NULs */
    const char *key[KAGI__MAX_KEYS], *val[KAGI__MAX_KEYS];
    int nkeys;
    unsigned flag_bits;
    uint64_t pulses, count, rec_bytes;
    uint64_t left;                /* record bytes not yet in buf */
    uint8_t *buf;
    size_t blen, bpos;
    uint64_t next;                /* index of the last record + 1 */
    uint64_t got;                 /* records returned */
};

const char *kagi_raw_get(const kagi_raw_reader *r, const char *key)
{
    for (int i = 0; i < r->nkeys; i++)
        if (strcmp(r->key[i], key) == 0) return r->val[i];
    return NULL;
}

uint64_t kagi_raw_count(const kagi_raw_reader *r) { return r->count; }

void kagi_raw_free(kagi_raw_reader *r)
{
    if (!r) return;
    if (r->fd >= 0) close(r->fd);
    if (r->buf) kagi__wipe(r->buf, KAGI__RD_BUF);
    free(r->buf);
    free(r->header);
    free(r->path);
    free(r);
}

/* Read exactly len bytes at offset off. */
static int kagi__pread_all(int fd, uint8_t *p, size_t len, uint64_t off)
{
    while (len) {
        ssize_t n = pread(fd, p, len, (off_t)off);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return -1;
        p += n;
        len -= (size_t)n;
        off += (uint64_t)n;
    }
    return 0;
}

/* A whole decimal number below limit, nothing else. */
static int kagi__parse_u64(const char *s, uint64_t limit, uint64_t *out)
{
    if (*s < '0' || *s > '9') return -1;
    uint64_t v = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9') return -1;
        unsigned d = (unsigned)(*s - '0');
        if (v > (limit - d) / 10) return -1;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

/* Split the header (NUL-terminated copy, magic line included) into keys
 * and values; size is its length up to and including "end\n". */
static int kagi__parse_header(kagi_raw_reader *r)
{
    char *line = r->header + strlen(KAGI__RAW_MAGIC);
    for (int no = 2;; no++) {
        char *nl = strchr(line, '\n');
        *nl = '\0'; /* the caller found "end\n", so every line has its newline */
        if (strcmp(line, "end") == 0) return KAGI_OK;
        char *sp = strchr(line, ' ');
        KAGI__FAIL_IF(!sp || sp == line || sp - line > 32, KAGI_ERR_FORMAT,
                      "%s: header line %d is not 'key value'", r->path, no);
        *sp = '\0';
        for (const char *c = line; *c; c++)
            KAGI__FAIL_IF(!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '_'),
                          KAGI_ERR_FORMAT, "%s: header line %d: bad character in key", r->path,
                          no);
        for (const char *c = sp + 1; *c; c++)
            KAGI__FAIL_IF(*c < 0x20 || *c > 0x7e, KAGI_ERR_FORMAT,
                          "%s: header line %d (%s): value is not printable text", r->path, no,
                          line);
        KAGI__FAIL_IF(kagi_raw_get(r, line), KAGI_ERR_FORMAT, "%s: header key '%s' repeated",
                      r->path, line);
        KAGI__FAIL_IF(r->nkeys == KAGI__MAX_KEYS, KAGI_ERR_FORMAT,
                      "%s: more than %d header keys", r->path, KAGI__MAX_KEYS);
        r->key[r->nkeys] = line;
        r->val[r->nkeys++] = sp + 1;
        line = nl + 1;
    }
}

static int kagi__open(kagi_raw_reader *r)
{
    const char *path = r->path;
    r->fd = open(path, O_RDONLY | O_CLOEXEC);
    KAGI__FAIL_IF(r->fd < 0, KAGI_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    KAGI__FAIL_IF(fstat(r->fd, &st) != 0 || !S_ISREG(st.st_mode), KAGI_ERR_IO,
                  "%s: not a regular file", path);
    uint64_t size = (uint64_t)st.st_size;
    size_t mlen = strlen(KAGI__RAW_MAGIC);
    size_t hcap = size < KAGI__RAW_HEADER_MAX ? (size_t)size : KAGI__RAW_HEADER_MAX;
    r->header = malloc(hcap + 1);
    KAGI__FAIL_IF(!r->header, KAGI_ERR_NOMEM, "%s: out of memory", path);
    KAGI__FAIL_IF(kagi__pread_all(r->fd, (uint8_t *)r->header, hcap, 0) != 0, KAGI_ERR_IO,
                  "%s: read failed: %s", path, strerror(errno));
    r->header[hcap] = '\0';
    if (hcap < mlen || memcmp(r->header, KAGI__RAW_MAGIC, mlen) != 0) {
        KAGI__FAIL_IF(hcap >= 9 && memcmp(r->header, "kagi-raw ", 9) == 0, KAGI_ERR_FORMAT,
                      "%s: raw format version '%.*s' is not supported (1 is)", path,
                      (int)strcspn(r->header + 9, "\n"), r->header + 9);
        return kagi__err(KAGI_ERR_FORMAT, "%s: not a kagi raw file (no '%.10s' line)", path,
                         KAGI__RAW_MAGIC);
    }
    /* The header ends at the first "\nend\n"; no NUL may come before. */
    char *end = memmem(r->header, hcap, "\nend\n", 5);
    KAGI__FAIL_IF(!end, KAGI_ERR_FORMAT, "%s: header has no 'end' line in its first %zu bytes%s",
                  path, hcap, size < KAGI__RAW_HEADER_MAX ? " (truncated?)" : "");
    size_t hlen = (size_t)(end - r->header) + 5;
    KAGI__FAIL_IF(memchr(r->header, '\0', hlen), KAGI_ERR_FORMAT,
                  "%s: header holds a NUL byte", path);
    r->header[hlen] = '\0';
    KAGI__TRY(kagi__parse_header(r));

    const char *role = kagi_raw_get(r, "role");
    KAGI__FAIL_IF(!role, KAGI_ERR_FORMAT, "%s: header has no 'role'", path);
    if (strcmp(role, "alice") == 0) r->flag_bits = 4;
    else if (strcmp(role, "bob") == 0) r->flag_bits = 2;
    else return kagi__err(KAGI_ERR_FORMAT, "%s: role '%s' is neither alice nor bob", path, role);
    const char *pulses = kagi_raw_get(r, "pulses");
    KAGI__FAIL_IF(!pulses || kagi__parse_u64(pulses, KAGI__RAW_MAX_PULSES, &r->pulses) ||
                      r->pulses == 0,
                  KAGI_ERR_FORMAT, "%s: header 'pulses' is missing or not in [1, 2^60]", path);

    /* Trailer: the record count, the record bytes, "kagi-end". */
    KAGI__FAIL_IF(size < hlen + KAGI__RAW_TRAILER, KAGI_ERR_FORMAT,
                  "%s: truncated: %" PRIu64 " bytes, no room for the %d-byte trailer", path, size,
                  KAGI__RAW_TRAILER);
    uint8_t t[KAGI__RAW_TRAILER];
    KAGI__FAIL_IF(kagi__pread_all(r->fd, t, sizeof t, size - KAGI__RAW_TRAILER) != 0,
                  KAGI_ERR_IO, "%s: read failed: %s", path, strerror(errno));
    KAGI__FAIL_IF(memcmp(t + 16, KAGI__RAW_END, 8) != 0, KAGI_ERR_FORMAT,
                  "%s: truncated or damaged: no '%s' trailer at the end", path, KAGI__RAW_END);
    r->count = kagi__le64_get(t);
    r->rec_bytes = kagi__le64_get(t + 8);
    uint64_t have = size - hlen - KAGI__RAW_TRAILER;
    KAGI__FAIL_IF(r->rec_bytes != have, KAGI_ERR_FORMAT,
                  "%s: trailer says %" PRIu64 " record bytes, the file holds %" PRIu64, path,
                  r->rec_bytes, have);
    KAGI__FAIL_IF(r->count > r->rec_bytes || r->count > r->pulses, KAGI_ERR_FORMAT,
                  "%s: trailer count %" PRIu64 " does not fit %" PRIu64 " bytes of %" PRIu64
                  " pulses", path, r->count, r->rec_bytes, r->pulses);
    r->left = r->rec_bytes;
    r->buf = malloc(KAGI__RD_BUF);
    KAGI__FAIL_IF(!r->buf, KAGI_ERR_NOMEM, "%s: out of memory", path);
    KAGI__FAIL_IF(lseek(r->fd, (off_t)hlen, SEEK_SET) < 0, KAGI_ERR_IO, "%s: seek failed: %s",
                  path, strerror(errno));
    return KAGI_OK;
}

int kagi_raw_open(const char *path, kagi_raw_reader **out)
{
    *out = NULL;
    kagi_raw_reader *r = calloc(1, sizeof *r);
    char *p = strdup(path);
    if (!r || !p) {
        free(r);
        free(p);
        return kagi__err(KAGI_ERR_NOMEM, "%s: out of memory", path);
    }
    r->path = p;
    r->fd = -1;
    int rc = kagi__open(r);
    if (rc) {
        kagi_raw_free(r);
        return rc;
    }
    *out = r;
    return KAGI_OK;
}

/* Top up buf to hold at least want bytes (or all that is left). */
static int kagi__fill(kagi_raw_reader *r, size_t want)
{
    size_t have = r->blen - r->bpos;
    memmove(r->buf, r->buf + r->bpos, have);
    r->bpos = 0;
    r->blen = have;
    while (r->blen < want && r->left) {
        size_t room = KAGI__RD_BUF - r->blen;
        if (room > r->left) room = (size_t)r->left;
        ssize_t n = read(r->fd, r->buf + r->blen, room);
        if (n < 0 && errno == EINTR) continue;
        KAGI__FAIL_IF(n < 0, KAGI_ERR_IO, "%s: read failed: %s", r->path, strerror(errno));
        KAGI__FAIL_IF(n == 0, KAGI_ERR_FORMAT, "%s: file shrank while read", r->path);
        r->blen += (size_t)n;
        r->left -= (uint64_t)n;
    }
    return KAGI_OK;
}

int kagi_raw_next(kagi_raw_reader *r, kagi_raw_rec *rec, int *got)
{
    *got = 0;
    if (r->got == r->count) {
        KAGI__FAIL_IF(r->bpos < r->blen || r->left, KAGI_ERR_FORMAT,
                      "%s: bytes after the last of the trailer's %" PRIu64 " records", r->path,
                      r->count);
        return KAGI_OK;
    }
    if (r->blen - r->bpos < 10) KAGI__TRY(kagi__fill(r, 10));
    const uint8_t *s = r->buf + r->bpos;
    size_t avail = r->blen - r->bpos, n = 0;
    uint64_t v = 0;
    for (;;) {
        KAGI__FAIL_IF(n == avail, KAGI_ERR_FORMAT,
                      "%s: record %" PRIu64 " is cut off: the file ends after %" PRIu64
                      " of the trailer's %" PRIu64 " records", r->path, r->got, r->got, r->count);
        uint8_t b = s[n];
        KAGI__FAIL_IF(n == 9 && b > 1, KAGI_ERR_FORMAT,
                      "%s: record %" PRIu64 " is longer than 64 bits", r->path, r->got);
        v |= (uint64_t)(b & 0x7f) << (7 * n);
        n++;
        if (!(b & 0x80)) break;
    }
    r->bpos += n;
    uint64_t gap = v >> r->flag_bits;
    unsigned flags = (unsigned)(v & ((1u << r->flag_bits) - 1));
    KAGI__FAIL_IF(gap >= r->pulses - r->next, KAGI_ERR_FORMAT,
                  "%s: record %" PRIu64 ": pulse index past the %" PRIu64 " pulses sent",
                  r->path, r->got, r->pulses);
    rec->index = r->next + gap;
    rec->basis = (uint8_t)(flags & 1);
    rec->bit = (uint8_t)((flags >> 1) & 1);
    rec->cls = (uint8_t)(flags >> 2);
    KAGI__FAIL_IF(rec->cls > 2, KAGI_ERR_FORMAT,
                  "%s: record %" PRIu64 ": intensity class 3 (only 0, 1, 2 exist)", r->path,
                  r->got);
    r->next = rec->index + 1;
    r->got++;
    *got = 1;
    return KAGI_OK;
}

/* Doubles of header key (n of them, space-separated, finite). */
static int kagi__get_doubles(const kagi_raw_reader *r, const char *key, double *out, int n)
{
    const char *s = kagi_raw_get(r, key);
    KAGI__FAIL_IF(!s, KAGI_ERR_FORMAT, "%s: header has no '%s'", r->path, key);
    for (int i = 0; i < n; i++) {
        char *end;
        out[i] = strtod(s, &end);
        KAGI__FAIL_IF(end == s || !isfinite(out[i]) || (*end != (i + 1 < n ? ' ' : '\0')),
                      KAGI_ERR_FORMAT, "%s: header '%s %s' is not %d number%s", r->path, key,
                      kagi_raw_get(r, key), n, n > 1 ? "s" : "");
        s = end + (i + 1 < n);
    }
    return KAGI_OK;
}

int kagi_raw_link(const kagi_raw_reader *r, kagi_link *l, uint64_t *pulses)
{
    memset(l, 0, sizeof *l);
    KAGI__TRY(kagi__get_doubles(r, "mu", l->mu, 3));
    KAGI__TRY(kagi__get_doubles(r, "p_mu", l->p_mu, 3));
    for (size_t i = 0; i < sizeof kagi__link_keys / sizeof kagi__link_keys[0]; i++)
        KAGI__TRY(kagi__get_doubles(r, kagi__link_keys[i].key,
                                    (double *)(void *)((char *)l + kagi__link_keys[i].off), 1));
    if (pulses) *pulses = r->pulses;
    return KAGI_OK;
}
