/* bench_kme: load tool for the KME. N keep-alive mutual-TLS connections
 * driven by M threads (epoll, OpenSSL) send enc_keys requests for one
 * 256-bit key each, one request in flight per connection, and report
 * requests per second and latency percentiles.
 *
 * By default it is self-contained: it makes a PKI and an at-rest key in a
 * temporary folder, fills a directory device with enough key for the run,
 * starts `kagi kme` (durable store: WAL, synchronous=FULL, group commit),
 * waits for the pool, loads it, and stops it with SIGTERM. With --port it
 * loads a server already running (certificates from --pki) and, with
 * --pid, measures that process's CPU: bench/probe_mhd uses it to load
 * libmicrohttpd and kagi with the same client. --slave SAE_A --expect 400
 * makes a KME refuse every request in its ETSI layer (the master named as
 * its own slave) before any store work: the cost of HTTP, TLS and
 * parsing alone. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "kagi/bits.h"
#include "kagi/error.h"
#include "kagi/kme.h"
#include "kagi/kms.h"
#include "internal.h" /* kagi__now */

extern char **environ;

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* The Content-Length of a response head (h up to eoh), 0 if absent. */
static size_t content_length(const char *h, const char *eoh)
{
    for (const char *p = h; p && p < eoh; p = strstr(p + 1, "\r\n"))
        if (!strncasecmp(p, "\r\nContent-Length:", 17)) return strtoul(p + 17, NULL, 10);
    return 0;
}

/* CPU seconds (user + system) a process has used so far. */
static double cpu_of(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    unsigned long ut = 0, st = 0;
    if (p && sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) == 2)
        return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
    return 0;
}

/* CPU seconds the whole machine has been busy (all cores, /proc/stat). */
static double cpu_machine(void)
{
    FILE *f = fopen("/proc/stat", "r");
    if (!f) return 0;
    unsigned long long v[8] = {0};
    int n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5],
                   &v[6], &v[7]);
    fclose(f);
    if (n < 8) return 0;
    return (double)(v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / (double)sysconf(_SC_CLK_TCK);
}

typedef struct conn {
    int fd;
    SSL *ssl;
    int state;          /* 0 handshake, 1 sending, 2 receiving */
    size_t sent;
    char buf[4096];
    size_t got;
    double t0;
} conn;

typedef struct worker {
    int id, nconn;
    conn *c;
    int ep;
    uint32_t *lat_us;   /* measured latencies */
    size_t nlat, cap;
    uint64_t ok, bad;
    uint64_t warm_ok;
} worker;

static SSL_CTX *ctx;
static int port;
static double t_start, t_measure, t_end;
static char req[512];
static char expect_line[32] = "HTTP/1.1 200"; /* the status every response must have */
static int expect_key = 1;                     /* and a key in it */
static size_t req_len;
static volatile int stop_all;

static int connect_one(conn *c)
{
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(0x7f000001);
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(c->fd, (struct sockaddr *)&a, sizeof a) != 0) return -1;
    c->ssl = SSL_new(ctx);
    SSL_set_fd(c->ssl, c->fd);
    SSL_set_tlsext_host_name(c->ssl, "localhost");
    if (SSL_connect(c->ssl) != 1) return -1; /* blocking handshake, then non-blocking */
    fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK);
    c->state = 1;
    return 0;
}

static void record(worker *w, double t0, double t1)
{
    if (t0 < t_measure || t1 > t_end) {
        w->warm_ok++;
        return;
    }
    if (w->nlat == w->cap) {
        w->cap = w->cap ? w->cap * 2 : 1 << 16;
        w->lat_us = realloc(w->lat_us, w->cap * sizeof *w->lat_us);
    }
    double us = (t1 - t0) * 1e6;
    w->lat_us[w->nlat++] = us > 4e9 ? 4000000000u : (uint32_t)us;
    w->ok++;
}

/* Drive one connection as far as it goes without blocking; returns the
 * epoll events it waits for, or -1 on a broken connection. */
static int step(worker *w, conn *c)
{
    for (;;) {
        if (c->state == 1) {
            if (c->sent == 0) {
                if (stop_all) return 0;
                c->t0 = kagi__now();
            }
            int n = SSL_write(c->ssl, req + c->sent, (int)(req_len - c->sent));
            if (n <= 0) {
                int e = SSL_get_error(c->ssl, n);
                if (e == SSL_ERROR_WANT_WRITE) return EPOLLOUT;
                if (e == SSL_ERROR_WANT_READ) return EPOLLIN;
                return -1;
            }
            c->sent += (size_t)n;
            if (c->sent == req_len) {
                c->state = 2;
                c->got = 0;
                return EPOLLIN; /* the answer raises an edge: no read(2) just for EAGAIN */
            }
        } else {
            int n = SSL_read(c->ssl, c->buf + c->got, (int)(sizeof c->buf - 1 - c->got));
            if (n <= 0) {
                int e = SSL_get_error(c->ssl, n);
                if (e == SSL_ERROR_WANT_READ) return EPOLLIN;
                if (e == SSL_ERROR_WANT_WRITE) return EPOLLOUT;
                return -1;
            }
            c->got += (size_t)n;
            c->buf[c->got] = '\0';
            char *eoh = strstr(c->buf, "\r\n\r\n");
            if (!eoh) {
                if (c->got >= sizeof c->buf - 1) return -1;
                continue;
            }
            size_t body = content_length(c->buf, eoh);
            size_t need = (size_t)(eoh + 4 - c->buf) + body;
            if (c->got < need) {
                if (need >= sizeof c->buf) return -1;
                continue;
            }
            double t1 = kagi__now();
            int okr = !strncmp(c->buf, expect_line, strlen(expect_line)) &&
                      (!expect_key || strstr(eoh, "\"key\":\""));
            if (okr) record(w, c->t0, t1);
            else if (w->bad++ == 0) fprintf(stderr, "bench_kme: unexpected response: %.120s\n", c->buf);
            kagi_wipe(c->buf, c->got);
            c->got = 0;
            c->sent = 0;
            c->state = 1;
        }
    }
}

static void *run_worker(void *arg)
{
    worker *w = arg;
    w->ep = epoll_create1(0);
    /* Edge-triggered, both directions, registered once: no epoll_ctl per request. */
    for (int i = 0; i < w->nconn; i++) {
        struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLET, .data.ptr = &w->c[i]};
        epoll_ctl(w->ep, EPOLL_CTL_ADD, w->c[i].fd, &ev);
    }
    struct epoll_event evs[64];
    int live = w->nconn;
    char *done = calloc((size_t)w->nconn, 1);
    while (live > 0) {
        if (kagi__now() >= t_end) stop_all = 1;
        int n = epoll_wait(w->ep, evs, 64, 100);
        for (int i = 0; i < n; i++) {
            conn *c = evs[i].data.ptr;
            size_t idx = (size_t)(c - w->c);
            if (done[idx]) continue;
            int want = step(w, c);
            if (want <= 0) {
                if (want < 0 && w->bad++ == 0)
                    fprintf(stderr, "bench_kme: connection broken: %s\n", ERR_error_string(ERR_get_error(), NULL));
                done[idx] = 1;
                live--;
            }
        }
        if (stop_all) /* connections idle between requests finish now */
            for (int i = 0; i < w->nconn; i++)
                if (!done[i] && w->c[i].state == 1 && w->c[i].sent == 0) {
                    done[i] = 1;
                    live--;
                }
    }
    free(done);
    close(w->ep);
    return NULL;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static const char *arg(int argc, char **argv, const char *name, const char *def)
{
    for (int i = 1; i + 1 < argc; i++)
        if (!strcmp(argv[i], name)) return argv[i + 1];
    return def;
}

/* GET status over a fresh blocking connection: the stored_key_count. */
static long stored_keys(void)
{
    conn c = {0};
    if (connect_one(&c) != 0) return -1;
    fcntl(c.fd, F_SETFL, fcntl(c.fd, F_GETFL) & ~O_NONBLOCK);
    const char *q = "GET /api/v1/keys/SAE_B/status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    SSL_write(c.ssl, q, (int)strlen(q));
    char b[4096];
    size_t got = 0;
    int n;
    while (got < sizeof b - 1 && (n = SSL_read(c.ssl, b + got, (int)(sizeof b - 1 - got))) > 0) got += (size_t)n;
    b[got] = '\0';
    SSL_free(c.ssl);
    close(c.fd);
    char *p = strstr(b, "\"stored_key_count\":");
    return p ? strtol(p + 19, NULL, 10) : -1;
}

int main(int argc, char **argv)
{
    if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        printf("usage: bench_kme [--connections N] [--threads M] [--seconds S] [--workers W]\n"
               "                 [--commit-interval-us U|auto] [--kagi PATH]\n"
               "                 [--port P --pki DIR [--pid SERVER_PID] [--slave ID] [--expect STATUS]]\n"
               "KAGI_BENCH_KEEP=1 keeps the temporary folder (the KME's log) for a look.\n");
        return 0;
    }
    int nconn = atoi(arg(argc, argv, "--connections", "32"));
    int nthr = atoi(arg(argc, argv, "--threads", "2"));
    double secs = atof(arg(argc, argv, "--seconds", "5"));
    int kworkers = atoi(arg(argc, argv, "--workers", "1"));
    const char *interval = arg(argc, argv, "--commit-interval-us", "auto"); /* the KME's default */
    if (strcmp(interval, "auto") && strspn(interval, "0123456789") != strlen(interval)) {
        fprintf(stderr, "bench_kme: --commit-interval-us takes a whole number of microseconds or auto, not '%s'\n", interval);
        return 2;
    }
    const char *kagi = arg(argc, argv, "--kagi", "build/kagi");
    const char *pki = arg(argc, argv, "--pki", NULL);
    port = atoi(arg(argc, argv, "--port", "0"));
    const char *slave = arg(argc, argv, "--slave", "SAE_B");
    int expect = atoi(arg(argc, argv, "--expect", "200"));
    pid_t server = (pid_t)atoi(arg(argc, argv, "--pid", "0"));
    snprintf(expect_line, sizeof expect_line, "HTTP/1.1 %d", expect);
    expect_key = expect == 200;
    if (nconn < 1 || nthr < 1 || nthr > nconn || secs <= 0) {
        fprintf(stderr, "bench_kme: bad arguments (see --help)\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    char dir[] = "/tmp/kagi-bench-kme.XXXXXX";
    pid_t kme = 0;
    char path[4200];
    const char *pkidir = pki;
    if (!port) {
        if (!mkdtemp(dir)) return 1;
        pkidir = dir;
        const char *names[] = {"KME_A", "SAE_A", "SAE_B"};
        if (kagi_pki_make(dir, "bench-ca", names, 3) || (snprintf(path, sizeof path, "%s/store.key", dir),
                                                           kagi_store_key_new(path))) {
            fprintf(stderr, "bench_kme: %s\n", kagi_errdetail());
            return 1;
        }
        /* Key for the whole run at up to 60k requests/s, in 1 MiB blocks. */
        size_t keys = (size_t)(60000 * (secs + 2)), per = 32768, nblk = (keys + per - 1) / per;
        snprintf(path, sizeof path, "%s/spool", dir);
        mkdir(path, 0700);
        uint8_t *blk = malloc(per * 32);
        for (size_t i = 0; i < nblk; i++) {
            if (kagi_random_bytes(blk, per * 32) || kagi_block_write(path, "loop", i + 1, blk, per * 32)) {
                fprintf(stderr, "bench_kme: %s\n", kagi_errdetail());
                return 1;
            }
        }
        kagi_wipe(blk, per * 32);
        free(blk);
        snprintf(path, sizeof path, "%s/kme.conf", dir);
        FILE *f = fopen(path, "w");
        fprintf(f, "kme_id = KME_A\nlisten = 127.0.0.1:0\ncert = %s/KME_A.pem\nkey = %s/KME_A.key\n"
                   "client_ca = %s/ca.pem\nstore = %s/kme.db\nstore_key = %s/store.key\n"
                   "ready_file = %s/ready\nlog = %s/kme.log\nlog_level = info\nworkers = %d\n"
                   "commit_interval_us = %s\nmax_key_count = 10000000\nmax_connections = 4096\n"
                   "sae = SAE_A\nsae = SAE_B\n[link loop]\npeer = KME_A\nsource = dir\ndir = %s/spool\n"
                   "poll_ms = 20\n",
                dir, dir, dir, dir, dir, dir, dir, kworkers, interval, dir);
        fclose(f);
        char *av[] = {(char *)kagi, "kme", "--config", path, NULL};
        if (posix_spawn(&kme, kagi, NULL, NULL, av, environ) != 0) {
            fprintf(stderr, "bench_kme: cannot start %s\n", kagi);
            return 1;
        }
        snprintf(path, sizeof path, "%s/ready", dir);
        for (int i = 0; i < 2000 && !port; i++) {
            FILE *r = fopen(path, "r");
            char line[300];
            if (r && fgets(line, sizeof line, r)) {
                char *c = strrchr(line, ':');
                if (c) port = atoi(c + 1);
            }
            if (r) fclose(r);
            if (!port) sleep_ms(10);
        }
        if (!port) {
            fprintf(stderr, "bench_kme: the KME did not start (see %s/kme.log)\n", dir);
            kill(kme, SIGTERM);
            return 1;
        }
        keys = nblk * per;
        ctx = NULL;
        (void)keys;
    }
    if (!pkidir) {
        fprintf(stderr, "bench_kme: --port needs --pki DIR (with ca.pem, SAE_A.pem, SAE_A.key)\n");
        return 2;
    }
    ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
    SSL_CTX_set_read_ahead(ctx, 1);
    snprintf(path, sizeof path, "%s/ca.pem", pkidir);
    SSL_CTX_load_verify_locations(ctx, path, NULL);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    snprintf(path, sizeof path, "%s/SAE_A.pem", pkidir);
    SSL_CTX_use_certificate_file(ctx, path, SSL_FILETYPE_PEM);
    snprintf(path, sizeof path, "%s/SAE_A.key", pkidir);
    if (SSL_CTX_use_PrivateKey_file(ctx, path, SSL_FILETYPE_PEM) != 1) {
        fprintf(stderr, "bench_kme: cannot load %s\n", path);
        return 1;
    }
    long need = (long)(60000 * (secs + 2)) / 32768 * 32768;
    if (kme) {
        double t = kagi__now() + 120;
        long have = 0;
        while (kagi__now() < t && (have = stored_keys()) < need) sleep_ms(50);
        printf("pool: %ld keys of 256 bits ready\n", have);
        fflush(stdout);
    }
    const char *body = "{\"number\":1,\"size\":256}";
    req_len = (size_t)snprintf(req, sizeof req,
                               "POST /api/v1/keys/%.64s/enc_keys HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                               "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                               slave, strlen(body), body);
    worker *w = calloc((size_t)nthr, sizeof *w);
    conn *cs = calloc((size_t)nconn, sizeof *cs);
    for (int i = 0; i < nconn; i++)
        if (connect_one(&cs[i]) != 0) {
            fprintf(stderr, "bench_kme: connection %d failed\n", i);
            ERR_print_errors_fp(stderr);
            if (kme) kill(kme, SIGTERM);
            return 1;
        }
    for (int i = 0, at = 0; i < nthr; i++) {
        w[i].id = i;
        w[i].nconn = nconn / nthr + (i < nconn % nthr);
        w[i].c = cs + at;
        at += w[i].nconn;
    }
    double warm = 1.0;
    t_start = kagi__now();
    t_measure = t_start + warm;
    t_end = t_measure + secs;
    pthread_t *th = calloc((size_t)nthr, sizeof *th);
    for (int i = 0; i < nthr; i++) pthread_create(&th[i], NULL, run_worker, &w[i]);
    double cpu_k0 = 0, cpu_k1 = 0, cpu_c0 = 0, cpu_c1 = 0, cpu_m0, cpu_m1;
    while (kagi__now() < t_measure) sleep_ms(5);
    pid_t measured = kme ? kme : server;
    if (measured) cpu_k0 = cpu_of(measured);
    cpu_c0 = cpu_of(getpid());
    cpu_m0 = cpu_machine();
    while (kagi__now() < t_end) sleep_ms(5);
    if (measured) cpu_k1 = cpu_of(measured);
    cpu_c1 = cpu_of(getpid());
    cpu_m1 = cpu_machine();
    for (int i = 0; i < nthr; i++) pthread_join(th[i], NULL);
    size_t n = 0;
    uint64_t bad = 0;
    for (int i = 0; i < nthr; i++) {
        n += w[i].nlat;
        bad += w[i].bad;
    }
    uint32_t *all = malloc((n ? n : 1) * sizeof *all);
    for (int i = 0, at = 0; i < nthr; i++) {
        memcpy(all + at, w[i].lat_us, w[i].nlat * sizeof *all);
        at += (int)w[i].nlat;
    }
    qsort(all, n, sizeof *all, cmp_u32);
#define PCT(p) (n ? all[(size_t)((double)(n - 1) * (p))] / 1000.0 : 0.0)
    printf("enc_keys, 1 key of 256 bits each, POST over %d keep-alive mutual-TLS 1.3 connections, "
           "%d client threads, %d KME worker%s, durable store (WAL, synchronous=FULL, group commit):\n",
           nconn, nthr, kworkers, kworkers == 1 ? "" : "s");
    printf("  %zu requests in %.1f s = %.0f requests/s; errors %llu\n", n, secs, (double)n / secs,
           (unsigned long long)bad);
    printf("  latency p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, p99.9 %.2f ms, max %.2f ms\n", PCT(0.5), PCT(0.9),
           PCT(0.99), PCT(0.999), PCT(1.0));
    if (n) {
        double others = (cpu_m1 - cpu_m0) - (cpu_k1 - cpu_k0) - (cpu_c1 - cpu_c0);
        printf("  CPU per request: KME %.1f us, load tool %.1f us; other processes used %.0f%% of a core meanwhile\n",
               measured ? (cpu_k1 - cpu_k0) / (double)n * 1e6 : 0.0, (cpu_c1 - cpu_c0) / (double)n * 1e6,
               others > 0 ? others / secs * 100 : 0.0);
    }
    for (int i = 0; i < nconn; i++) {
        SSL_free(cs[i].ssl);
        close(cs[i].fd);
    }
    int rc = 0;
    if (kme) {
        kill(kme, SIGTERM);
        int st = 0;
        waitpid(kme, &st, 0);
        snprintf(path, sizeof path, "%s/kme.log", dir);
        FILE *f = fopen(path, "r");
        char line[1200], last[1200] = "";
        while (f && fgets(line, sizeof line, f))
            if (strstr(line, "stopped cleanly")) snprintf(last, sizeof last, "%s", line);
        if (f) fclose(f);
        char *p = strstr(last, "stopped cleanly: ");
        unsigned long long ops = 0, commits = 0, fs = 0;
        double fmean = 0, fmax = 0;
        if (p && sscanf(p, "stopped cleanly: %llu store operations in %llu commits; %llu fsyncs, mean %lf ms, max %lf ms",
                        &ops, &commits, &fs, &fmean, &fmax) == 5 && commits && fs)
            printf("  store (whole run): %llu operations in %llu transactions (%.1f each), %llu WAL fsyncs "
                   "(mean %.2f ms, max %.2f ms)\n", ops, commits, (double)ops / (double)commits, fs, fmean, fmax);
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            fprintf(stderr, "bench_kme: the KME did not stop cleanly (see %s)\n", dir);
            rc = 1;
        } else if (getenv("KAGI_BENCH_KEEP")) {
            printf("  (kept %s)\n", dir);
        } else {
            char cmd[200];
            snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
            if (system(cmd) != 0) rc = 1;
        }
    }
    if (bad) rc = 1;
    free(all);
    for (int i = 0; i < nthr; i++) free(w[i].lat_us);
    free(w);
    free(cs);
    free(th);
    SSL_CTX_free(ctx);
    return rc;
}
