/* bench_store: the KME's key store alone, the part of an enc_keys request
 * after HTTP and TLS. N client threads each keep one ISSUE of one 256-bit
 * key in flight (as N kept-alive connections do), through the committer's
 * group commit and the syncer's WAL fsync, like the daemon; it reports
 * operations per second, latency percentiles and the CPU time per
 * operation of the whole process, and compares with the naive store: one
 * transaction and one fsync per operation (group commit off).
 *
 *   build/bench/bench_store [--clients 32] [--seconds 3] [--dir /tmp] */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "kagi/bits.h"
#include "kagi/error.h"
#include "kagi/kms.h"
#include "internal.h" /* kagi__now */

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6 + (double)ru.ru_stime.tv_sec +
           (double)ru.ru_stime.tv_usec * 1e-6;
}

typedef struct {
    kagi_store *s;
    uint32_t link;
    double t_measure, t_end;
    double *lat;
    size_t n_lat, cap_lat;
    unsigned long done, failed;
    int serial;            /* naive: one operation at a time, process-wide */
} client;

static pthread_mutex_t serial_mu = PTHREAD_MUTEX_INITIALIZER;

static void *run(void *arg)
{
    client *c = arg;
    kagi_store_op op;
    for (;;) {
        double t0 = kagi__now();
        if (t0 >= c->t_end) break;
        memset(&op, 0, sizeof op);
        op.kind = KAGI_STORE_ISSUE;
        op.link = c->link;
        op.master = "SAE_A";
        op.slaves[0] = "SAE_B";
        op.n_slaves = 1;
        op.number = 1;
        op.size_bytes = 32;
        if (c->serial) pthread_mutex_lock(&serial_mu);
        int e = kagi_store_run(c->s, &op);
        if (c->serial) pthread_mutex_unlock(&serial_mu);
        double t1 = kagi__now();
        if (e || op.result != KAGI_STORE_DONE) c->failed++;
        kagi_store_op_clear(&op);
        if (t0 < c->t_measure) continue;
        c->done++;
        if (c->n_lat == c->cap_lat) {
            c->cap_lat = c->cap_lat ? 2 * c->cap_lat : 4096;
            c->lat = realloc(c->lat, c->cap_lat * sizeof *c->lat);
        }
        c->lat[c->n_lat++] = t1 - t0;
    }
    return NULL;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static const char *arg(int argc, char **argv, const char *name, const char *def)
{
    for (int i = 1; i + 1 < argc; i++)
        if (!strcmp(argv[i], name)) return argv[i + 1];
    return def;
}

static int one(const char *dir, int nclients, double secs, int serial)
{
    char path[512];
    snprintf(path, sizeof path, "%s/bench-store-%d.db", dir, (int)getpid());
    uint8_t key[KAGI_STORE_KEY_BYTES];
    if (kagi_random_bytes(key, sizeof key)) return 1;
    kagi_store_opts o = {.unit_bytes = 32};
    kagi_store *s = NULL;
    uint32_t link = 0;
    if (kagi_store_open(&s, path, key, &o) || kagi_store_link(s, "loop", &link)) {
        fprintf(stderr, "bench_store: %s\n", kagi_errdetail());
        return 1;
    }
    /* key for the whole run, 1 MiB blocks */
    size_t need = (size_t)(40000 * (secs + 1)) * 32, per = 1u << 20;
    uint8_t *blk = malloc(per);
    for (size_t id = 1; (id - 1) * per < need; id++) {
        kagi_store_op op = {.kind = KAGI_STORE_ADD_BLOCK, .link = link, .block = blk, .block_len = per,
                            .block_id = id};
        if (kagi_random_bytes(blk, per) || kagi_store_run(s, &op) || op.result != KAGI_STORE_DONE) {
            fprintf(stderr, "bench_store: filling the pool failed\n");
            return 1;
        }
    }
    kagi_wipe(blk, per);
    free(blk);
    kagi_store_stats st0, st1;
    client *c = calloc((size_t)nclients, sizeof *c);
    pthread_t *th = calloc((size_t)nclients, sizeof *th);
    double t0 = kagi__now();
    for (int i = 0; i < nclients; i++) {
        c[i] = (client){.s = s, .link = link, .t_measure = t0 + 0.5, .t_end = t0 + 0.5 + secs, .serial = serial};
        pthread_create(&th[i], NULL, run, &c[i]);
    }
    while (kagi__now() < t0 + 0.5) sleep_ms(1);
    double cpu0 = cpu_s();
    kagi_store_get_stats(s, &st0);
    while (kagi__now() < t0 + 0.5 + secs) sleep_ms(1);
    double cpu1 = cpu_s();
    kagi_store_get_stats(s, &st1);
    unsigned long done = 0, failed = 0;
    size_t nl = 0;
    for (int i = 0; i < nclients; i++) {
        pthread_join(th[i], NULL);
        done += c[i].done;
        failed += c[i].failed;
        nl += c[i].n_lat;
    }
    double *all = malloc((nl ? nl : 1) * sizeof *all);
    size_t k = 0;
    for (int i = 0; i < nclients; i++) {
        memcpy(all + k, c[i].lat, c[i].n_lat * sizeof *all);
        k += c[i].n_lat;
        free(c[i].lat);
    }
    qsort(all, nl, sizeof *all, cmp);
    double rate = (double)done / secs;
    uint64_t commits = st1.commits - st0.commits, fsyncs = st1.fsyncs - st0.fsyncs;
    printf("%-34s %9.0f ops/s  p50 %5.2f ms  p99 %5.2f ms  CPU %5.1f us/op  %4.1f ops/commit  "
           "fsync mean %.2f ms%s\n",
           serial ? "naive (one op per commit + fsync)" : "group commit (the KME's store)", rate,
           nl ? all[nl / 2] * 1e3 : 0.0, nl ? all[(size_t)(0.99 * (double)(nl - 1))] * 1e3 : 0.0,
           done ? (cpu1 - cpu0) / (double)done * 1e6 : 0.0, commits ? (double)(st1.ops - st0.ops) / (double)commits : 0.0,
           fsyncs ? (double)(st1.fsync_us - st0.fsync_us) / (double)fsyncs / 1e3 : 0.0,
           failed ? " (some failed!)" : "");
    free(all);
    free(c);
    free(th);
    kagi_store_close(s);
    unlink(path);
    char side[600];
    snprintf(side, sizeof side, "%s-wal", path);
    unlink(side);
    snprintf(side, sizeof side, "%s-shm", path);
    unlink(side);
    return failed ? 1 : 0;
}

int main(int argc, char **argv)
{
    if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        printf("usage: bench_store [--clients 32] [--seconds 3] [--dir /tmp]\n");
        return 0;
    }
    int n = atoi(arg(argc, argv, "--clients", "32"));
    double secs = atof(arg(argc, argv, "--seconds", "3"));
    const char *dir = arg(argc, argv, "--dir", "/tmp");
    if (n < 1 || secs <= 0) {
        fprintf(stderr, "bench_store: bad arguments (see --help)\n");
        return 2;
    }
    printf("key store: ISSUE of one 256-bit key, %d clients with one operation in flight each, durable "
           "(WAL, fsync before completion), %s\n", n, dir);
    int rc = one(dir, n, secs, 0);
    rc |= one(dir, n, secs > 1 ? 1 : secs, 1);
    return rc;
}
