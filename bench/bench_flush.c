/* Does flushing to disk freeze this machine? One thread writes 12 KiB and
 * fdatasyncs it in a loop (a WAL's group commit), paced to a target rate;
 * another thread spins on the clock and counts the moments it did not run
 * for over 1 ms while the other core was free. On a bare machine flushes
 * only block the flusher. On the project's VM, back-to-back fdatasyncs
 * (~2,000/s) freeze the whole guest for 5-17 ms every 100 ms, which is
 * why the KME paces its commits (docs/kme.md, "Flush pacing").
 *
 *   build/bench/bench_flush [DIR [SECONDS]]     (DIR: where the file goes, default .)
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "internal.h" /* kagi__now */

typedef struct {
    double until;
    int stalls;
    double stalled, longest;
} spin_t;

static void *spin(void *arg)
{
    spin_t *s = arg;
    double last = kagi__now();
    for (;;) {
        double t = kagi__now();
        if (t - last > 1e-3) {
            s->stalls++;
            s->stalled += t - last;
            if (t - last > s->longest) s->longest = t - last;
        }
        last = t;
        if (t > s->until) return NULL;
    }
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : ".";
    double secs = argc > 2 ? atof(argv[2]) : 3;
    if (secs <= 0 || secs > 3600) {
        fprintf(stderr, "bench_flush: SECONDS must be in (0, 3600], not '%s'\n", argv[2]);
        return 2;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/bench_flush.XXXXXX", dir);
    int fd = mkstemp(path);
    if (fd < 0) {
        fprintf(stderr, "bench_flush: cannot make a file in %s\n", dir);
        return 1;
    }
    unlink(path);
    static char buf[12288];
    memset(buf, 0x5a, sizeof buf);
    printf("fdatasync of 12 KiB appended in a loop, %.0f s per row; a spinning thread counts its stalls over 1 ms\n", secs);
    printf("%-22s %10s %12s %8s %14s %12s\n", "pacing", "fsyncs/s", "mean fsync", "stalls", "stalled", "longest");
    /* 0: back to back; then a least gap between fsync starts */
    const double gaps[] = {0, 500e-6, 700e-6, 1000e-6};
    for (size_t g = 0; g < sizeof gaps / sizeof gaps[0]; g++) {
        spin_t s = {.until = kagi__now() + secs};
        pthread_t th;
        if (pthread_create(&th, NULL, spin, &s) != 0) return 1;
        long n = 0;
        off_t off = 0;
        double fs = 0, t0 = kagi__now(), next = t0;
        while (kagi__now() < s.until) {
            double t = kagi__now();
            if (t < next) {
                struct timespec ts = {0, (long)((next - t) * 1e9)};
                nanosleep(&ts, NULL);
            }
            next = kagi__now() + gaps[g];
            if (pwrite(fd, buf, sizeof buf, off) != (ssize_t)sizeof buf) {
                fprintf(stderr, "bench_flush: write failed\n");
                return 1;
            }
            off = off + (off_t)sizeof buf > (64 << 20) ? 0 : off + (off_t)sizeof buf;
            double a = kagi__now();
            if (fdatasync(fd) != 0) {
                fprintf(stderr, "bench_flush: fdatasync failed\n");
                return 1;
            }
            fs += kagi__now() - a;
            n++;
        }
        pthread_join(th, NULL);
        double el = kagi__now() - t0;
        char label[32];
        if (gaps[g] == 0) snprintf(label, sizeof label, "back to back");
        else snprintf(label, sizeof label, "starts >= %.0f us apart", gaps[g] * 1e6);
        printf("%-22s %10.0f %9.3f ms %8d %8.1f ms/s %9.1f ms\n", label, n / el, n ? fs / n * 1e3 : 0.0, s.stalls,
               s.stalled / el * 1e3, s.longest * 1e3);
    }
    close(fd);
    return 0;
}
