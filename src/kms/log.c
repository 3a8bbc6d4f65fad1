/* One-line log records with UTC timestamps, one write(2) per line. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "kms_internal.h"

static int kagi__log_fd = 2;
static int kagi__log_max = KAGI__LOG_WARN;

void kagi__log_setup(int fd, int level)
{
    kagi__log_fd = fd;
    kagi__log_max = level;
}

int kagi__log_level(void) { return kagi__log_max; }

size_t kagi__log_vformat(char *line, size_t cap, int level, const char *fmt, va_list ap)
{
    static const char *const names[] = {"ERROR", "WARN", "INFO", "DEBUG"};
    if (cap < 64) return 0;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, cap, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %-5s ", tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000,
                     names[level < 0 || level > 3 ? 0 : level]);
    int m = vsnprintf(line + n, cap - (size_t)n - 1, fmt, ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > cap - 2) len = cap - 2;
    line[len++] = '\n';
    return len;
}

void kagi__log_raw(const char *s, size_t len)
{
    (void)kagi__fd_write_all(kagi__log_fd, s, len); /* a log that cannot be written is not logged */
}

void kagi__log(int level, const char *fmt, ...)
{
    if (level > kagi__log_max || level < 0) return;
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    size_t len = kagi__log_vformat(line, sizeof line, level, fmt, ap);
    va_end(ap);
    kagi__log_raw(line, len);
}

/* Start a line in b: the timestamp and level (31 characters); NULL when
 * the level is not logged. */
static char *kagi__logbuf_start(kagi__logbuf *b, int level)
{
    static const char *const names[] = {"ERROR", "WARN ", "INFO ", "DEBUG"};
    if (level > kagi__log_max || level < 0) return NULL;
    if (sizeof b->b - b->n < 1024) kagi__logbuf_flush(b);
    /* The timestamp prefix is formatted once per second of wall time. */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (ts.tv_sec != b->sec) {
        struct tm tm;
        gmtime_r(&ts.tv_sec, &tm);
        snprintf(b->prefix, sizeof b->prefix, "%04d-%02d-%02dT%02d:%02d:%02d.", tm.tm_year + 1900,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
        b->sec = ts.tv_sec;
    }
    char *line = b->b + b->n;
    memcpy(line, b->prefix, 20);
    long ms = ts.tv_nsec / 1000000;
    line[20] = (char)('0' + ms / 100);
    line[21] = (char)('0' + ms / 10 % 10);
    line[22] = (char)('0' + ms % 10);
    line[23] = 'Z';
    line[24] = ' ';
    memcpy(line + 25, names[level], 5);
    line[30] = ' ';
    return line;
}

/* End the line started in b with a message of m characters. */
static void kagi__logbuf_end(kagi__logbuf *b, char *line, size_t m)
{
    size_t len = 31 + m;
    if (len > 1022) len = 1022;
    line[len++] = '\n';
    b->n += len;
}

void kagi__logbuf_add(kagi__logbuf *b, int level, const char *fmt, ...)
{
    char *line = kagi__logbuf_start(b, level);
    if (!line) return;
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + 31, 1024 - 32, fmt, ap);
    va_end(ap);
    kagi__logbuf_end(b, line, m < 0 ? 0 : (size_t)m);
}

void kagi__logbuf_text(kagi__logbuf *b, int level, const char *msg, size_t len)
{
    char *line = kagi__logbuf_start(b, level);
    if (!line) return;
    if (len > 1024 - 33) len = 1024 - 33;
    memcpy(line + 31, msg, len);
    kagi__logbuf_end(b, line, len);
}

void kagi__logbuf_flush(kagi__logbuf *b)
{
    if (b->n) kagi__log_raw(b->b, b->n);
    b->n = 0;
}
