/* Key sources that fill a link's pool: a simulated QKD device producing
 * random key at a modelled rate, and a directory device ingesting block
 * files written by real QKD hardware. Each runs in its own thread and
 * hands blocks to the store as ADD_BLOCK operations, which wait for the
 * commit. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "kms_internal.h"

struct kagi_device {
    kagi_store *s;
    uint32_t link;
    char name[KAGI_LINK_NAME_MAX + 1];
    int is_dir;
    kagi_device_sim_opts sim;
    char *dir;
    unsigned poll_ms;
    uint64_t cap;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stop;
};

/* Wait until monotonic time t or a stop request; 1 if stopping. */
static int kagi__dev_wait(kagi_device *d, double t)
{
    struct timespec ts;
    ts.tv_sec = (time_t)t;
    ts.tv_nsec = (long)((t - (double)ts.tv_sec) * 1e9);
    pthread_mutex_lock(&d->mu);
    while (!d->stop && kagi__now() < t)
        if (pthread_cond_timedwait(&d->cv, &d->mu, &ts) == ETIMEDOUT) break;
    int stop = d->stop;
    pthread_mutex_unlock(&d->mu);
    return stop;
}

static int kagi__add(kagi_store *s, uint32_t link, uint64_t block_id, const uint8_t *key, size_t len,
                     kagi_store_op *op)
{
    *op = (kagi_store_op){.kind = KAGI_STORE_ADD_BLOCK, .link = link, .block = key, .block_len = len,
                          .block_id = block_id};
    return kagi_store_run(s, op);
}

/* Blocks due at one wake-up are stored as one block (one transaction) of
 * up to this many bytes, so a fast simulated link does not flood the
 * committer with tiny commits. */
#define KAGI__SIM_MERGE (1u << 20)

static void *kagi__sim_main(void *arg)
{
    kagi_device *d = arg;
    double per_block = (double)d->sim.block_bytes * 8.0 / (d->sim.bps * d->sim.speedup);
    size_t most = d->sim.block_bytes > KAGI__SIM_MERGE ? d->sim.block_bytes
                                                       : KAGI__SIM_MERGE / d->sim.block_bytes * d->sim.block_bytes;
    uint8_t *buf = malloc(most);
    if (!buf) {
        kagi__log(KAGI__LOG_ERROR, "link %s: simulated device: out of memory", d->name);
        return NULL;
    }
    double next = kagi__now() + per_block;
    uint64_t made = 0, dropped = 0;
    while (!kagi__dev_wait(d, next)) {
        /* Blocks due by now; a backlog of more than a second of blocks is
           dropped (the device ran while the KME could not take key). */
        double now = kagi__now();
        uint64_t due = (uint64_t)((now - next) / per_block) + 1;
        uint64_t max_due = (uint64_t)(1.0 / per_block) + 1;
        if (due > max_due) {
            dropped += due - max_due;
            due = max_due;
        }
        next += (double)due * per_block;
        if (next < now) next = now + per_block;
        uint64_t bytes = due * d->sim.block_bytes;
        uint64_t room = d->cap > kagi_store_pool_bytes(d->s, d->link) ? d->cap - kagi_store_pool_bytes(d->s, d->link) : 0;
        if (bytes > room) {
            dropped += (bytes - room + d->sim.block_bytes - 1) / d->sim.block_bytes;
            bytes = room / d->sim.block_bytes * d->sim.block_bytes;
        }
        while (bytes > 0) {
            size_t n = bytes < most ? (size_t)bytes : most;
            kagi_store_op op;
            uint64_t id = (uint64_t)(kagi_store_last_block(d->s, d->link) + 1);
            int e = kagi_random_bytes(buf, n);
            if (!e) e = kagi__add(d->s, d->link, id, buf, n, &op);
            kagi_wipe(buf, n);
            if (e || op.result != KAGI_STORE_DONE) {
                kagi__log(KAGI__LOG_ERROR, "link %s: simulated device: block %llu not stored: %s",
                          d->name, (unsigned long long)id, e ? kagi_errdetail() : op.msg);
                break;
            }
            made++;
            bytes -= n;
            kagi__log(KAGI__LOG_DEBUG, "link %s: simulated device stored block %llu (%zu bytes)",
                      d->name, (unsigned long long)id, n);
            pthread_mutex_lock(&d->mu);
            int stop = d->stop;
            pthread_mutex_unlock(&d->mu);
            if (stop) break;
        }
    }
    free(buf);
    kagi__log(KAGI__LOG_INFO, "link %s: simulated device stopped: %llu blocks stored, %llu dropped "
              "while the pool was full or the KME busy", d->name, (unsigned long long)made,
              (unsigned long long)dropped);
    return NULL;
}

static int kagi__name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void kagi__quarantine(int dfd, const char *dir, const char *name, const char *why)
{
    char bad[512];
    snprintf(bad, sizeof bad, "%.*s.bad", (int)(strlen(name) - 4), name);
    if (renameat(dfd, name, dfd, bad) != 0) unlinkat(dfd, name, 0);
    kagi__log(KAGI__LOG_ERROR, "directory device %s: %s: %s (moved to %s)", dir, name, why, bad);
}

/* Ingest one file; 1 to go on with the scan, 0 to stop it. */
static int kagi__ingest(kagi_store *s, uint32_t link, const char *link_name, const char *dir,
                        int dfd, const char *name, unsigned *stored)
{
    int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        if (errno != ENOENT) kagi__quarantine(dfd, dir, name, strerror(errno));
        return 1;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size < KAGI_BLOCK_HEADER ||
        st.st_size > KAGI_BLOCK_HEADER + (off_t)KAGI_MAX_BLOCK_BYTES) {
        close(fd);
        kagi__quarantine(dfd, dir, name, "not a regular file of a block's size");
        return 1;
    }
    size_t len = (size_t)st.st_size;
    uint8_t *buf = malloc(len);
    if (!buf) {
        close(fd);
        kagi__log(KAGI__LOG_ERROR, "directory device %s: out of memory for %s", dir, name);
        return 0;
    }
    size_t got = kagi__fd_read_full(fd, buf, len);
    close(fd);
    int go_on = 1;
    char flink[KAGI_LINK_NAME_MAX + 1];
    uint64_t id = 0;
    const uint8_t *key = NULL;
    size_t klen = 0;
    if (got != len || kagi_block_parse(buf, len, flink, &id, &key, &klen) != KAGI_OK) {
        kagi__quarantine(dfd, dir, name, got != len ? "short read" : kagi_errdetail());
    } else if (strcmp(flink, link_name) != 0) {
        char why[128];
        snprintf(why, sizeof why, "block of link %s, this device serves %s", flink, link_name);
        kagi__quarantine(dfd, dir, name, why);
    } else {
        kagi_store_op op;
        int e = kagi__add(s, link, id, key, klen, &op);
        if (!e && op.result == KAGI_STORE_DONE) {
            unlinkat(dfd, name, 0);
            (void)fsync(dfd);
            (*stored)++;
            kagi__log(KAGI__LOG_DEBUG, "link %s: stored block %llu (%zu bytes) from %s", link_name,
                      (unsigned long long)id, klen, name);
        } else if (!e && op.result == KAGI_STORE_BAD_ID) {
            /* Stored before (a crash between commit and removal) or replayed:
               never store key twice. */
            unlinkat(dfd, name, 0);
            (void)fsync(dfd);
            kagi__log(KAGI__LOG_WARN, "link %s: %s: %s; file removed", link_name, name, op.msg);
        } else {
            kagi__log(KAGI__LOG_ERROR, "link %s: %s not stored: %s", link_name, name,
                      e ? kagi_errdetail() : op.msg);
            go_on = 0;
        }
    }
    kagi_wipe(buf, len);
    free(buf);
    return go_on;
}

int kagi_device_dir_scan(kagi_store *s, uint32_t link, const char *link_name, const char *dir,
                         uint64_t cap_bytes, unsigned *stored)
{
    unsigned dummy = 0;
    if (!stored) stored = &dummy;
    *stored = 0;
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    KAGI__FAIL_IF(dfd < 0, KAGI_ERR_IO, "directory device %s: %s", dir, strerror(errno));
    DIR *dh = fdopendir(dup(dfd));
    if (!dh) {
        close(dfd);
        return kagi__err(KAGI_ERR_IO, "directory device %s: %s", dir, strerror(errno));
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    int e = KAGI_OK;
    struct dirent *de;
    while ((de = readdir(dh)) != NULL) {
        size_t l = strlen(de->d_name);
        if (de->d_name[0] == '.' || l < 5 || l > 255 || strcmp(de->d_name + l - 4, ".key") != 0) continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            char **v = realloc(names, cap * sizeof *v);
            if (!v) { e = kagi__err(KAGI_ERR_NOMEM, "directory device: out of memory"); break; }
            names = v;
        }
        if (!(names[n] = strdup(de->d_name))) { e = kagi__err(KAGI_ERR_NOMEM, "out of memory"); break; }
        n++;
    }
    closedir(dh);
    if (n) qsort(names, n, sizeof *names, kagi__name_cmp);
    for (size_t i = 0; !e && i < n; i++) {
        if (kagi_store_pool_bytes(s, link) >= cap_bytes) break;
        if (!kagi__ingest(s, link, link_name, dir, dfd, names[i], stored)) break;
    }
    for (size_t i = 0; i < n; i++) free(names[i]);
    free(names);
    close(dfd);
    return e;
}

/* Blocks stored, logged at info once a minute (each block at debug: a
 * fast device hands in dozens a second). */
static void kagi__dir_tally(kagi_device *d, unsigned long long *n, double *since, int force)
{
    double now = kagi__now();
    if (*n && (force || now - *since >= 60)) {
        kagi__log(KAGI__LOG_INFO, "link %s: %llu block%s stored in the last %.0f s; the pool holds %llu bytes",
                  d->name, *n, *n == 1 ? "" : "s", now - *since,
                  (unsigned long long)kagi_store_pool_bytes(d->s, d->link));
        *n = 0;
    }
    if (force || now - *since >= 60) *since = now;
}

static void *kagi__dir_main(void *arg)
{
    kagi_device *d = arg;
    double next = kagi__now(), since = next;
    unsigned long long tally = 0;
    /* the first block is worth a line at once: the device works */
    int first = 1;
    for (;;) {
        unsigned stored = 0;
        if (kagi_device_dir_scan(d->s, d->link, d->name, d->dir, d->cap, &stored))
            kagi__log(KAGI__LOG_ERROR, "%s", kagi_errdetail());
        tally += stored;
        kagi__dir_tally(d, &tally, &since, first && stored);
        if (stored) first = 0;
        next += d->poll_ms * 1e-3;
        double now = kagi__now();
        if (next < now) next = now;
        if (stored == 0 && kagi__dev_wait(d, next)) break;
        pthread_mutex_lock(&d->mu);
        int stop = d->stop;
        pthread_mutex_unlock(&d->mu);
        if (stop) break;
    }
    kagi__dir_tally(d, &tally, &since, 1);
    return NULL;
}

static int kagi__dev_new(kagi_device **out, kagi_store *s, uint32_t link, const char *name)
{
    kagi_device *d = calloc(1, sizeof *d);
    KAGI__FAIL_IF(!d, KAGI_ERR_NOMEM, "device: out of memory");
    d->s = s;
    d->link = link;
    snprintf(d->name, sizeof d->name, "%s", name);
    pthread_mutex_init(&d->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&d->cv, &ca);
    pthread_condattr_destroy(&ca);
    *out = d;
    return KAGI_OK;
}

int kagi_device_sim_start(kagi_device **out, kagi_store *s, uint32_t link, const char *link_name,
                          const kagi_device_sim_opts *o)
{
    *out = NULL;
    KAGI__FAIL_IF(!(o->bps > 0) || !(o->speedup >= 1e-3) || o->block_bytes < 1 ||
                      o->block_bytes > KAGI_MAX_BLOCK_BYTES,
                  KAGI_ERR_ARG, "link %s: simulated device needs a positive rate (model gives %g bit/s), "
                  "speedup >= 0.001 and a block of 1..%u bytes", link_name, o->bps, KAGI_MAX_BLOCK_BYTES);
    kagi_device *d;
    KAGI__TRY(kagi__dev_new(&d, s, link, link_name));
    d->sim = *o;
    d->cap = o->cap_bytes;
    if (pthread_create(&d->thread, NULL, kagi__sim_main, d) != 0) {
        free(d);
        return kagi__err(KAGI_ERR_NOMEM, "link %s: cannot start the device thread", link_name);
    }
    *out = d;
    return KAGI_OK;
}

int kagi_device_dir_start(kagi_device **out, kagi_store *s, uint32_t link, const char *link_name,
                          const char *dir, unsigned poll_ms, uint64_t cap_bytes)
{
    *out = NULL;
    struct stat st;
    KAGI__FAIL_IF(stat(dir, &st) != 0 || !S_ISDIR(st.st_mode), KAGI_ERR_ARG,
                  "link %s: directory device %s is not a folder", link_name, dir);
    kagi_device *d;
    KAGI__TRY(kagi__dev_new(&d, s, link, link_name));
    d->is_dir = 1;
    d->dir = strdup(dir);
    d->poll_ms = poll_ms ? poll_ms : 200;
    d->cap = cap_bytes;
    if (!d->dir || pthread_create(&d->thread, NULL, kagi__dir_main, d) != 0) {
        free(d->dir);
        free(d);
        return kagi__err(KAGI_ERR_NOMEM, "link %s: cannot start the device thread", link_name);
    }
    *out = d;
    return KAGI_OK;
}

void kagi_device_stop(kagi_device *d)
{
    if (!d) return;
    pthread_mutex_lock(&d->mu);
    d->stop = 1;
    pthread_cond_signal(&d->cv);
    pthread_mutex_unlock(&d->mu);
    pthread_join(d->thread, NULL);
    pthread_cond_destroy(&d->cv);
    pthread_mutex_destroy(&d->mu);
    free(d->dir);
    free(d);
}
