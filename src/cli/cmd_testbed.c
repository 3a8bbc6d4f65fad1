/* kagi testbed: a scenario's network as real KME daemons on loopback.
 *
 * One `kagi kme` child process per node (this very binary, through
 * /proc/self/exe), each on its own pre-allocated 127.0.0.1 port with a
 * PKI, a store and a spool folder per link, all under one folder. This
 * process is the QKD device of every link: it writes the same block files
 * (same block id, same random bytes) into both ends' spools at the link's
 * modelled key rate times --speedup, and the KMEs ingest them with their
 * directory devices. docs/testbed.md describes the layout and the files. */
#define _GNU_SOURCE /* prctl's PR_SET_PDEATHSIG, realpath */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "dash.h"
#include "kagi/error.h"
#include "kagi/kme.h"
#include "kagi/kms.h"
#include "kagi/scenario.h"
#include "kagi/sim.h"
#include "internal.h" /* kagi__now */

static kagi_cli_opt kagi__opts[] = {
    {"scenario", "SCENARIO", "the network, in YAML (docs/scenario.md), with saes: and demands "
     "naming master and slave SAEs", KAGI_CLI_POSITIONAL, NULL},
    {"dir", "DIR", "folder for the PKI, the KMEs' configurations, stores, spools and logs, and "
     "endpoints.json (created if missing)", 1, NULL},
    {"speedup", "X", "run the simulated QKD devices X times faster than the link models "
     "(default 1000)", 0, NULL},
    {"block-bytes", "N", "key per block file, bytes (default 4096)", 0, NULL},
    {"max-key", "BYTES", "stop each link's device after this much key (default: no limit)", 0,
     NULL},
    {"force", NULL, "wipe the testbed files a previous run left in DIR first", 0, NULL},
    {"serve", "[ADDR:PORT]", "show the testbed on a live web dashboard (docs/dashboard.md): key written "
     "per link, pool levels the KMEs report to ETSI status calls", 0, NULL},
    KAGI_CLI_DASH_OPTS,
    {NULL, NULL, NULL, 0, NULL},
};

#define KAGI__READY_S 20.0     /* every KME serving within this, or the start fails */
#define KAGI__STOP_S 10.0      /* SIGTERM, then this long before SIGKILL */
#define KAGI__FIRST_BLOCKS 8   /* written before the KMEs start */
#define KAGI__SPOOL_MAX 4      /* a spool holding more: its KME is behind, pause */
#define KAGI__POLL_MS 50       /* the KMEs' spool scans */
#define KAGI__KEY_BITS 256     /* the key size routes are computed for */

typedef struct kagi__tkme {
    const char *id;            /* the node's name, a valid KME id */
    unsigned port;
    char dir[PATH_MAX];        /* DIR/ID */
    pid_t pid;                 /* 0: not started or reaped */
    int ready;
    size_t nsaes;
} kagi__tkme;

typedef struct kagi__tlink {
    char name[KAGI_LINK_NAME_MAX + 1];
    size_t a, b;               /* node indices; a == b: a loopback link */
    double bytes_s;            /* key written per second (rate x speedup / 8) */
    double credit;             /* bytes due and not yet written */
    uint64_t next_id, written;
    char spool[2][PATH_MAX];   /* a's and b's (the same for a loopback) */
} kagi__tlink;

typedef struct kagi__tb {
    kagi_cli_cmd *cmd;
    const kagi_scenario *sc;
    kagi_sim *sim;
    char dir[PATH_MAX];        /* absolute */
    double speedup;
    size_t block_bytes;
    uint64_t max_key;          /* 0: none */
    kagi__tkme *kme;
    kagi__tlink *links;
    size_t nlinks;
    char outsider[KAGI_SAE_ID_MAX + 1];
} kagi__tb;

static volatile sig_atomic_t kagi__stop_sig;

static void kagi__on_signal(int sig) { kagi__stop_sig = sig; }

static void kagi__sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL); /* a signal cuts it short: the loop then sees it */
}

static int kagi__fail(const kagi__tb *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int kagi__fail(const kagi__tb *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "kagi %s: ", t->cmd->name);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return KAGI_EXIT_FAIL;
}

/* snprintf that reports truncation (paths that do not fit are refused). */
static int kagi__path(char *out, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int kagi__path(char *out, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out, cap, fmt, ap);
    va_end(ap);
    return n < 0 || (size_t)n >= cap ? -1 : 0;
}

static int kagi__exists(const char *p)
{
    struct stat st;
    return lstat(p, &st) == 0;
}

/* rm -r of what the testbed made: no symlink is followed. */
static int kagi__rm_tree(const char *p)
{
    struct stat st;
    if (lstat(p, &st) != 0) return errno == ENOENT ? 0 : -1;
    if (!S_ISDIR(st.st_mode)) return unlink(p);
    DIR *d = opendir(p);
    if (!d) return -1;
    int rc = 0;
    for (struct dirent *e; rc == 0 && (e = readdir(d));) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char sub[PATH_MAX];
        rc = kagi__path(sub, sizeof sub, "%s/%s", p, e->d_name) ? -1 : kagi__rm_tree(sub);
    }
    closedir(d);
    return rc ? rc : rmdir(p);
}

static int kagi__mkdirs(const char *p, mode_t mode)
{
    char buf[PATH_MAX];
    if (kagi__path(buf, sizeof buf, "%s", p)) return -1;
    for (char *s = buf + 1; *s; s++)
        if (*s == '/') {
            *s = 0;
            if (mkdir(buf, mode) != 0 && errno != EEXIST) return -1;
            *s = '/';
        }
    return mkdir(buf, mode) != 0 && errno != EEXIST ? -1 : 0;
}

/* A link's name for the KMEs and the block files: the scenario's, with
 * anything but A-Z a-z 0-9 . _ - made '_', cut to 30 characters (a link to
 * another KME may have no more: docs/kme.md), made unique with "-K". */
static void kagi__link_name(const kagi__tb *t, size_t k, const char *from, char out[KAGI_LINK_NAME_MAX + 1])
{
    const size_t max = KAGI_LINK_NAME_MAX - 1;
    char base[KAGI_LINK_NAME_MAX + 1];
    size_t n = 0;
    for (const char *s = from; *s && n < max; s++) {
        char c = *s;
        int ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                 c == '.' || c == '_' || c == '-';
        base[n++] = ok ? c : '_';
    }
    base[n] = 0;
    if (!n) snprintf(base, sizeof base, "link%zu", k);
    memcpy(out, base, sizeof base);
    for (unsigned tries = 1;; tries++) {
        int clash = 0;
        for (size_t j = 0; j < k; j++) clash |= !strcmp(t->links[j].name, out);
        if (!clash) return;
        char suf[48];
        if (tries == 1) snprintf(suf, sizeof suf, "-%zu", k); /* "-K", then "-K.2", "-K.3" */
        else snprintf(suf, sizeof suf, "-%zu.%u", k, tries);
        size_t keep = strlen(base) + strlen(suf) > max ? max - strlen(suf) : strlen(base);
        memcpy(out, base, keep);
        memcpy(out + keep, suf, strlen(suf) + 1);
    }
}

/* Names the KMEs and the PKI can take; exit 2 naming the culprit. */
static int kagi__check_names(kagi__tb *t)
{
    const kagi_scenario *sc = t->sc;
    for (size_t i = 0; i < sc->nnodes; i++)
        if (!kagi_sc_valid_id(sc->nodes[i].name))
            return kagi_cli_usage_error(t->cmd, "%s:%zu: node '%s' cannot be a KME id (1 to 64 of "
                                        "A-Z a-z 0-9 . _ ~ -): rename it", sc->origin,
                                        sc->nodes[i].line, sc->nodes[i].name);
    for (size_t i = 0; i < sc->nsaes; i++)
        if (kagi_scenario_node(sc, sc->saes[i].id) >= 0)
            return kagi_cli_usage_error(t->cmd, "%s:%zu: SAE '%s' has the name of a node, whose "
                                        "KME holds that certificate name: rename one",
                                        sc->origin, sc->saes[i].line, sc->saes[i].id);
    if (!sc->nsaes)
        fprintf(stderr, "kagi %s: warning: %s lists no saes: the KMEs serve no application "
                "(docs/scenario.md, SAEs)\n", t->cmd->name, sc->origin);
    /* the outsider: a valid certificate that no KME lists */
    snprintf(t->outsider, sizeof t->outsider, "outsider");
    for (unsigned k = 2; kagi_scenario_sae(sc, t->outsider) >= 0 ||
                         kagi_scenario_node(sc, t->outsider) >= 0; k++)
        snprintf(t->outsider, sizeof t->outsider, "outsider-%u", k);
    return KAGI_EXIT_OK;
}

/* Links: the scenario's, plus a loopback link at each node with two SAEs
 * or more (how SAEs of one KME share keys), fed at the node's best rate. */
static int kagi__plan_links(kagi__tb *t)
{
    const kagi_scenario *sc = t->sc;
    t->links = calloc(sc->nlinks + sc->nnodes, sizeof *t->links);
    if (!t->links) return kagi__fail(t, "out of memory");
    double *best = calloc(sc->nnodes, sizeof *best);
    if (!best) return kagi__fail(t, "out of memory");
    for (size_t i = 0; i < sc->nlinks; i++) {
        kagi__tlink *l = &t->links[t->nlinks];
        kagi_sim_link_stats st;
        kagi_sim_link(t->sim, i, &st);
        kagi__link_name(t, t->nlinks, sc->links[i].name, l->name);
        l->a = sc->links[i].a;
        l->b = sc->links[i].b;
        l->bytes_s = st.rate_bps * t->speedup / 8;
        if (st.rate_bps > best[l->a]) best[l->a] = st.rate_bps;
        if (st.rate_bps > best[l->b]) best[l->b] = st.rate_bps;
        if (!(st.rate_bps > 0))
            fprintf(stderr, "kagi %s: warning: link %s gives no key (its model at %.1f km): its "
                    "KMEs get none from it\n", t->cmd->name, sc->links[i].name, st.length_km);
        t->nlinks++;
    }
    for (size_t n = 0; n < sc->nnodes; n++) {
        if (t->kme[n].nsaes < 2) continue;
        kagi__tlink *l = &t->links[t->nlinks];
        char nm[KAGI_SC_NAME_MAX + 8];
        snprintf(nm, sizeof nm, "%s.loop", sc->nodes[n].name);
        kagi__link_name(t, t->nlinks, nm, l->name);
        l->a = l->b = n;
        l->bytes_s = (best[n] > 0 ? best[n] : 1e5) * t->speedup / 8;
        t->nlinks++;
    }
    free(best);
    for (size_t k = 0; k < t->nlinks; k++) {
        kagi__tlink *l = &t->links[k];
        l->next_id = 1;
        if (kagi__path(l->spool[0], PATH_MAX, "%s/spool/%s", t->kme[l->a].dir, l->name) ||
            kagi__path(l->spool[1], PATH_MAX, "%s/spool/%s", t->kme[l->b].dir, l->name))
            return kagi__fail(t, "%s: path too long", t->dir);
    }
    return KAGI_EXIT_OK;
}

/* A free loopback port per KME: all bound at once (so they differ), then
 * released for the KMEs, which bind them a moment later. */
static int kagi__ports(kagi__tb *t)
{
    size_t n = t->sc->nnodes;
    int rc = KAGI_EXIT_OK;
    int *fds = malloc(n * sizeof *fds);
    if (!fds) return kagi__fail(t, "out of memory");
    size_t got = 0;
    for (; got < n; got++) {
        struct sockaddr_in a;
        memset(&a, 0, sizeof a);
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t al = sizeof a;
        fds[got] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fds[got] < 0 || bind(fds[got], (struct sockaddr *)&a, sizeof a) != 0 ||
            getsockname(fds[got], (struct sockaddr *)&a, &al) != 0) {
            rc = kagi__fail(t, "cannot get a free port on 127.0.0.1: %s", strerror(errno));
            if (fds[got] >= 0) close(fds[got]);
            break;
        }
        t->kme[got].port = ntohs(a.sin_port);
    }
    for (size_t i = 0; i < got; i++) close(fds[i]);
    free(fds);
    return rc;
}

/* DIR: made if missing; a previous testbed's files are refused, or wiped
 * with --force (unless that testbed still runs). */
static int kagi__prepare_dir(kagi__tb *t, const char *arg, int force)
{
    if (strpbrk(arg, "#\"\n\r"))
        return kagi_cli_usage_error(t->cmd, "--dir: '%s' holds '#', '\"' or a line break, which "
                                    "a KME configuration cannot hold", arg);
    if (kagi__mkdirs(arg, 0700) != 0) return kagi__fail(t, "--dir %s: %s", arg, strerror(errno));
    if (!realpath(arg, t->dir)) return kagi__fail(t, "--dir %s: %s", arg, strerror(errno));
    /* every path below DIR then fits (node and link names are short) */
    if (strlen(t->dir) > PATH_MAX - 512)
        return kagi_cli_usage_error(t->cmd, "--dir: %s is too long a path", t->dir);
    char p[PATH_MAX];
    if (kagi__path(p, sizeof p, "%s/testbed.pid", t->dir) == 0) {
        FILE *f = fopen(p, "r");
        long pid = 0;
        if (f) {
            if (fscanf(f, "%ld", &pid) != 1) pid = 0;
            fclose(f);
        }
        char cl[PATH_MAX], cmdline[256] = "";
        snprintf(cl, sizeof cl, "/proc/%ld/cmdline", pid);
        FILE *c = pid > 0 ? fopen(cl, "r") : NULL;
        if (c) {
            size_t n = fread(cmdline, 1, sizeof cmdline - 1, c);
            fclose(c);
            for (size_t i = 0; i < n; i++)
                if (!cmdline[i]) cmdline[i] = ' ';
            cmdline[n] = 0;
        }
        if (pid > 0 && pid != (long)getpid() && strstr(cmdline, "testbed"))
            return kagi_cli_usage_error(t->cmd, "%s: a testbed is running there (pid %ld): stop "
                                        "it first (kill %ld)", t->dir, pid, pid);
    }
    /* what a testbed leaves: endpoints.json, pki/, testbed.pid, and a folder
     * per node holding kme.conf */
    const char *mine[] = {"endpoints.json", "pki", "testbed.pid"};
    char found[PATH_MAX] = "";
    for (size_t i = 0; i < 3 && !found[0]; i++)
        if (!kagi__path(p, sizeof p, "%s/%s", t->dir, mine[i]) && kagi__exists(p))
            snprintf(found, sizeof found, "%s", p);
    DIR *d = opendir(t->dir);
    for (struct dirent *e; d && (e = readdir(d));) {
        if (e->d_name[0] == '.') continue;
        if (kagi__path(p, sizeof p, "%s/%s/kme.conf", t->dir, e->d_name) || !kagi__exists(p))
            continue;
        if (!force) {
            if (!found[0]) snprintf(found, sizeof found, "%s", p);
            continue;
        }
        p[strlen(p) - strlen("/kme.conf")] = 0;
        if (kagi__rm_tree(p) != 0) {
            closedir(d);
            return kagi__fail(t, "--force: cannot remove %s: %s", p, strerror(errno));
        }
    }
    if (d) closedir(d);
    for (size_t i = 0; i < t->sc->nnodes && (force || !found[0]); i++)
        if (!kagi__path(p, sizeof p, "%s/%s", t->dir, t->sc->nodes[i].name) && kagi__exists(p)) {
            if (!force) snprintf(found, sizeof found, "%s", p);
            else if (kagi__rm_tree(p) != 0)
                return kagi__fail(t, "--force: cannot remove %s: %s", p, strerror(errno));
        }
    if (found[0] && !force)
        return kagi_cli_usage_error(t->cmd, "%s already holds a testbed (%s): give --force to "
                                    "wipe its files and start anew, or another --dir", t->dir,
                                    found);
    for (size_t i = 0; i < 3; i++)
        if (!kagi__path(p, sizeof p, "%s/%s", t->dir, mine[i]) && kagi__rm_tree(p) != 0)
            return kagi__fail(t, "--force: cannot remove %s: %s", p, strerror(errno));
    return KAGI_EXIT_OK;
}

static int kagi__adjacent(const kagi_scenario *sc, size_t a, size_t b)
{
    for (size_t i = 0; i < sc->nlinks; i++)
        if ((sc->links[i].a == a && sc->links[i].b == b) || (sc->links[i].a == b && sc->links[i].b == a))
            return 1;
    return 0;
}

/* DIR/N/kme.conf (docs/kme.md): every SAE of the scenario, a [link]
 * section per link at N with its peer's address, and a route for every
 * KME not adjacent to N, from the simulator's routing. */
static int kagi__write_config(kagi__tb *t, size_t n, size_t *path, size_t max)
{
    const kagi_scenario *sc = t->sc;
    const kagi__tkme *k = &t->kme[n];
    char p[PATH_MAX];
    if (kagi__path(p, sizeof p, "%s/kme.conf", k->dir)) return kagi__fail(t, "path too long");
    FILE *f = fopen(p, "w");
    if (!f) return kagi__fail(t, "%s: %s", p, strerror(errno));
    fprintf(f, "# KME %s of the testbed of %s (kagi testbed; docs/testbed.md)\n", k->id, sc->origin);
    fprintf(f, "kme_id = %s\nlisten = 127.0.0.1:%u\n", k->id, k->port);
    fprintf(f, "cert = %s/pki/%s.pem\nkey = %s/pki/%s.key\nclient_ca = %s/pki/ca.pem\n", t->dir,
            k->id, t->dir, k->id, t->dir);
    fprintf(f, "store = %s/kme.db\nstore_key = %s/store.key\nlog = %s/kme.log\n", k->dir, k->dir,
            k->dir);
    fprintf(f, "ready_file = %s/ready\nlog_level = info\n", k->dir);
    for (size_t i = 0; i < sc->nsaes; i++) {
        size_t at = sc->saes[i].node;
        if (at == n)
            fprintf(f, "sae = %s\n", sc->saes[i].id);
        else
            fprintf(f, "sae = %s@%s\n", sc->saes[i].id, sc->nodes[at].name);
    }
    for (size_t m = 0; m < sc->nnodes; m++) {
        if (m == n || kagi__adjacent(sc, n, m)) continue;
        size_t np = 0;
        int rc = kagi_sim_route(t->sim, n, m, KAGI__KEY_BITS, path, max, &np);
        if (rc != KAGI_OK) {
            fprintf(stderr, "kagi %s: warning: KME %s has no route to KME %s (%s): keys for its "
                    "SAEs get 503\n", t->cmd->name, k->id, sc->nodes[m].name, kagi_errdetail());
            continue;
        }
        if (np - 1 > KAGI_ROUTE_MAX) {
            fprintf(stderr, "kagi %s: warning: the route from KME %s to %s has %zu hops, more "
                    "than a KME takes (%d): left out\n", t->cmd->name, k->id, sc->nodes[m].name,
                    np - 1, KAGI_ROUTE_MAX);
            continue;
        }
        fprintf(f, "route = %s via ", sc->nodes[m].name);
        for (size_t j = 1; j < np; j++) fprintf(f, "%s%s", j > 1 ? "," : "", sc->nodes[path[j]].name);
        fputc('\n', f);
    }
    for (size_t i = 0; i < t->nlinks; i++) {
        const kagi__tlink *l = &t->links[i];
        if (l->a != n && l->b != n) continue;
        size_t peer = l->a == n ? l->b : l->a;
        fprintf(f, "\n[link %s]\npeer = %s\n", l->name, sc->nodes[peer].name);
        if (peer != n) fprintf(f, "peer_address = 127.0.0.1:%u\n", t->kme[peer].port);
        fprintf(f, "source = dir\ndir = %s\npoll_ms = %d\n", l->spool[l->a == n ? 0 : 1], KAGI__POLL_MS);
    }
    if (fflush(f) != 0 || ferror(f) || fsync(fileno(f)) != 0) {
        int e = errno;
        fclose(f);
        return kagi__fail(t, "%s: %s", p, strerror(e));
    }
    fclose(f);
    return KAGI_EXIT_OK;
}

/* The PKI, each KME's folder, store key, spools and configuration. */
static int kagi__lay_out(kagi__tb *t)
{
    const kagi_scenario *sc = t->sc;
    char p[PATH_MAX];
    size_t nn = sc->nnodes, nnames = 0;
    const char **names = malloc((nn + sc->nsaes + 1) * sizeof *names);
    size_t *path = malloc((nn + 1) * sizeof *path);
    if (!names || !path) {
        free(names);
        free(path);
        return kagi__fail(t, "out of memory");
    }
    for (size_t i = 0; i < nn; i++) names[nnames++] = sc->nodes[i].name;
    for (size_t i = 0; i < sc->nsaes; i++) names[nnames++] = sc->saes[i].id;
    names[nnames++] = t->outsider;
    int rc = KAGI_EXIT_OK;
    if (kagi__path(p, sizeof p, "%s/pki", t->dir)) rc = kagi__fail(t, "path too long");
    if (!rc && kagi_pki_make(p, "kagi-testbed-ca", names, nnames) != KAGI_OK)
        rc = kagi__fail(t, "PKI: %s", kagi_errdetail());
    for (size_t n = 0; !rc && n < nn; n++) {
        if (mkdir(t->kme[n].dir, 0700) != 0 && errno != EEXIST)
            rc = kagi__fail(t, "%s: %s", t->kme[n].dir, strerror(errno));
        else if (kagi__path(p, sizeof p, "%s/store.key", t->kme[n].dir) ||
                 kagi_store_key_new(p) != KAGI_OK)
            rc = kagi__fail(t, "%s", kagi_errdetail());
    }
    for (size_t i = 0; !rc && i < t->nlinks; i++)
        for (int e = 0; !rc && e < 2; e++)
            if (kagi__mkdirs(t->links[i].spool[e], 0700) != 0)
                rc = kagi__fail(t, "%s: %s", t->links[i].spool[e], strerror(errno));
    for (size_t n = 0; !rc && n < nn; n++) rc = kagi__write_config(t, n, path, nn + 1);
    free(names);
    free(path);
    return rc;
}

/* Block files in a spool folder (the KME has not ingested them yet). */
static int kagi__spooled(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return 0;
    int n = 0;
    for (struct dirent *e; (e = readdir(d));) {
        size_t l = strlen(e->d_name);
        n += l > 4 && !strcmp(e->d_name + l - 4, ".key");
    }
    closedir(d);
    return n;
}

/* One block of fresh random key into both spools of link l, under one id;
 * the buffer is wiped whatever happens. */
static int kagi__write_block(kagi__tb *t, kagi__tlink *l, uint8_t *buf)
{
    size_t len = t->block_bytes;
    if (t->max_key && t->max_key - l->written < len) len = (size_t)(t->max_key - l->written);
    int rc = KAGI_OK;
    if (RAND_bytes(buf, (int)len) != 1) rc = kagi__fail(t, "RAND_bytes failed");
    for (int e = 0; !rc && e < (l->a == l->b ? 1 : 2); e++)
        if (kagi_block_write(l->spool[e], l->name, l->next_id, buf, len) != KAGI_OK)
            rc = kagi__fail(t, "link %s: %s", l->name, kagi_errdetail());
    OPENSSL_cleanse(buf, len);
    if (rc) return rc;
    l->next_id++;
    l->written += len;
    l->credit -= (double)len;
    return KAGI_OK;
}

static int kagi__done(const kagi__tb *t, const kagi__tlink *l)
{
    return t->max_key && l->written >= t->max_key;
}

/* The devices' work for dt seconds: each link earns bytes_s * dt (at most
 * a few blocks' worth, so a pause does not end in a burst) and writes
 * whole blocks while its KMEs keep up with their spools. */
static int kagi__pace(kagi__tb *t, double dt, uint8_t *buf)
{
    for (size_t i = 0; i < t->nlinks; i++) {
        kagi__tlink *l = &t->links[i];
        if (kagi__done(t, l) || !(l->bytes_s > 0)) continue;
        double cap = (double)t->block_bytes * KAGI__SPOOL_MAX;
        l->credit += l->bytes_s * dt;
        if (l->credit > cap) l->credit = cap;
        if (l->credit < (double)t->block_bytes) continue;
        int queued = kagi__spooled(l->spool[0]);
        if (l->b != l->a) {
            int q2 = kagi__spooled(l->spool[1]);
            if (q2 > queued) queued = q2;
        }
        for (; queued < KAGI__SPOOL_MAX && l->credit >= (double)t->block_bytes && !kagi__done(t, l);
             queued++)
            if (kagi__write_block(t, l, buf)) return KAGI_EXIT_FAIL;
    }
    return KAGI_EXIT_OK;
}

static int kagi__spawn(kagi__tb *t, size_t n)
{
    kagi__tkme *k = &t->kme[n];
    char conf[PATH_MAX], log[PATH_MAX];
    if (kagi__path(conf, sizeof conf, "%s/kme.conf", k->dir) ||
        kagi__path(log, sizeof log, "%s/kme.log", k->dir))
        return kagi__fail(t, "path too long");
    int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0) return kagi__fail(t, "%s: %s", log, strerror(errno));
    pid_t parent = getpid();
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        close(fd);
        return kagi__fail(t, "fork: %s", strerror(errno));
    }
    if (pid == 0) {
        /* its own process group: a ^C at the terminal reaches the testbed,
           which stops the KMEs in order; and they stop if it dies */
        setpgid(0, 0);
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != parent) _exit(127);
        int nul = open("/dev/null", O_RDONLY);
        if (nul >= 0) dup2(nul, 0);
        dup2(fd, 1);
        dup2(fd, 2);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        char *argv[] = {"kagi", "kme", "--config", conf, NULL};
        execv("/proc/self/exe", argv);
        dprintf(2, "kagi testbed: cannot run /proc/self/exe: %s\n", strerror(errno));
        _exit(127);
    }
    close(fd);
    k->pid = pid;
    return KAGI_EXIT_OK;
}

/* The last lines of a KME's log, to say why it stopped. */
static void kagi__log_tail(const kagi__tkme *k)
{
    char p[PATH_MAX];
    if (kagi__path(p, sizeof p, "%s/kme.log", k->dir)) return;
    FILE *f = fopen(p, "r");
    if (!f) return;
    char buf[1200];
    if (fseek(f, 0, SEEK_END) == 0) {
        long end = ftell(f);
        if (end > (long)sizeof buf - 1) fseek(f, end - (long)sizeof buf + 1, SEEK_SET);
        else rewind(f);
    }
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    const char *s = buf;
    for (int lines = 0, i = (int)n - 1; i > 0; i--)
        if (buf[i - 1] == '\n' && ++lines == 4) {
            s = buf + i;
            break;
        }
    fprintf(stderr, "  last lines of %s:\n", p);
    for (const char *l = s; *l;) {
        const char *e = strchr(l, '\n');
        int len = e ? (int)(e - l) : (int)strlen(l);
        if (len) fprintf(stderr, "    %.*s\n", len, l);
        l += len + (e != NULL);
    }
}

static void kagi__describe_exit(const kagi__tb *t, const kagi__tkme *k, int st, const char *when)
{
    char how[64];
    if (WIFEXITED(st))
        snprintf(how, sizeof how, "exited with status %d", WEXITSTATUS(st));
    else
        snprintf(how, sizeof how, "was killed by signal %d", WIFSIGNALED(st) ? WTERMSIG(st) : 0);
    fprintf(stderr, "kagi %s: KME %s %s %s: see %s/kme.log\n", t->cmd->name, k->id, how, when, k->dir);
    kagi__log_tail(k);
}

/* A child that has exited, reaped: its index, or -1. */
static long kagi__reap(kagi__tb *t, int *st)
{
    for (size_t n = 0; n < t->sc->nnodes; n++) {
        kagi__tkme *k = &t->kme[n];
        if (!k->pid) continue;
        pid_t r = waitpid(k->pid, st, WNOHANG);
        if (r == k->pid || (r < 0 && errno == ECHILD)) {
            if (r < 0) *st = 0;
            k->pid = 0;
            return (long)n;
        }
    }
    return -1;
}

/* SIGTERM to every KME still running, then wait (SIGKILL after
 * KAGI__STOP_S). Returns how many did not stop cleanly. */
static int kagi__stop_all(kagi__tb *t)
{
    int bad = 0;
    for (size_t n = 0; n < t->sc->nnodes; n++)
        if (t->kme[n].pid) kill(t->kme[n].pid, SIGTERM);
    double t0 = kagi__now();
    for (;;) {
        int st, left = 0;
        for (size_t n = 0; n < t->sc->nnodes; n++) {
            kagi__tkme *k = &t->kme[n];
            if (!k->pid) continue;
            pid_t r = waitpid(k->pid, &st, WNOHANG);
            if (r == 0) {
                left++;
                continue;
            }
            k->pid = 0;
            if (r > 0 && !(WIFEXITED(st) && WEXITSTATUS(st) == 0)) {
                kagi__describe_exit(t, k, st, "on SIGTERM");
                bad++;
            }
        }
        if (!left) break;
        if (kagi__now() - t0 > KAGI__STOP_S) {
            for (size_t n = 0; n < t->sc->nnodes; n++) {
                kagi__tkme *k = &t->kme[n];
                if (!k->pid) continue;
                fprintf(stderr, "kagi %s: KME %s did not stop within %.0f s of SIGTERM: killed "
                        "(see %s/kme.log)\n", t->cmd->name, k->id, KAGI__STOP_S, k->dir);
                kill(k->pid, SIGKILL);
                waitpid(k->pid, &st, 0);
                k->pid = 0;
                bad++;
            }
            break;
        }
        kagi__sleep_ms(20);
    }
    return bad;
}

/* ---- endpoints.json ---- */

typedef struct kagi__pair {
    size_t master, slave;      /* indices in saes[] */
    long hops;                 /* -1: no path carries key */
} kagi__pair;

static json_t *kagi__sae_json(const kagi__tb *t, const char *id, long node)
{
    char cert[PATH_MAX], key[PATH_MAX], url[64];
    (void)kagi__path(cert, sizeof cert, "%s/pki/%s.pem", t->dir, id);
    (void)kagi__path(key, sizeof key, "%s/pki/%s.key", t->dir, id);
    json_t *o = json_object();
    json_object_set_new(o, "id", json_string(id));
    if (node >= 0) {
        snprintf(url, sizeof url, "https://127.0.0.1:%u", t->kme[node].port);
        json_object_set_new(o, "kme", json_string(t->kme[node].id));
        json_object_set_new(o, "kme_url", json_string(url));
    }
    json_object_set_new(o, "cert", json_string(cert));
    json_object_set_new(o, "key", json_string(key));
    return o;
}

/* The demands naming both SAEs, once per (master, slave), the most hops
 * first (stable: file order among equals). */
static kagi__pair *kagi__pairs(kagi__tb *t, size_t *count)
{
    const kagi_scenario *sc = t->sc;
    kagi__pair *p = calloc(sc->ndemands + 1, sizeof *p);
    size_t *path = malloc((sc->nnodes + 1) * sizeof *path);
    size_t n = 0;
    for (size_t i = 0; p && path && i < sc->ndemands; i++) {
        const kagi_sc_demand *d = &sc->demands[i];
        if (!d->master || !d->slave) continue;
        int dup = 0;
        for (size_t j = 0; j < n; j++) dup |= p[j].master == d->master - 1 && p[j].slave == d->slave - 1;
        if (dup) continue;
        kagi__pair q = {d->master - 1, d->slave - 1, 1};
        size_t np = 0;
        if (!kagi__adjacent(sc, d->src, d->dst))
            q.hops = kagi_sim_route(t->sim, d->src, d->dst, KAGI__KEY_BITS, path, sc->nnodes + 1,
                                    &np) == KAGI_OK ? (long)np - 1 : -1;
        size_t at = n++;
        while (at > 0 && p[at - 1].hops < q.hops) {
            p[at] = p[at - 1];
            at--;
        }
        p[at] = q;
    }
    free(path);
    *count = n;
    return p;
}

static int kagi__write_endpoints(kagi__tb *t)
{
    const kagi_scenario *sc = t->sc;
    size_t np = 0;
    kagi__pair *pairs = kagi__pairs(t, &np);
    if (!pairs) return kagi__fail(t, "out of memory");
    char p[PATH_MAX], tmp[PATH_MAX];
    json_t *root = json_object(), *jp = json_array(), *kmes = json_object(), *saes = json_array();
    (void)kagi__path(p, sizeof p, "%s/pki/ca.pem", t->dir);
    json_object_set_new(root, "ca", json_string(p));
    for (size_t i = 0; i < np; i++) {
        const kagi_sc_sae *m = &sc->saes[pairs[i].master], *s = &sc->saes[pairs[i].slave];
        json_t *o = json_object();
        json_object_set_new(o, "master", kagi__sae_json(t, m->id, (long)m->node));
        json_object_set_new(o, "slave", kagi__sae_json(t, s->id, (long)s->node));
        json_object_set_new(o, "hops", pairs[i].hops >= 0 ? json_integer(pairs[i].hops) : json_null());
        json_array_append_new(jp, o);
        if (pairs[i].hops < 0)
            fprintf(stderr, "kagi %s: warning: no path carries key from %s to %s: the pair %s, "
                    "%s gets 503\n", t->cmd->name, sc->nodes[m->node].name,
                    sc->nodes[s->node].name, m->id, s->id);
    }
    if (!np)
        fprintf(stderr, "kagi %s: warning: no demand names both a master and a slave SAE: "
                "endpoints.json lists no pairs\n", t->cmd->name);
    else if (pairs[0].hops < 2)
        fprintf(stderr, "kagi %s: warning: no SAE pair is two or more hops apart (the first "
                "pair is %ld): nothing exercises key relay\n", t->cmd->name, pairs[0].hops);
    json_object_set_new(root, "pairs", jp);
    json_object_set_new(root, "outsider", kagi__sae_json(t, t->outsider, -1));
    for (size_t n = 0; n < sc->nnodes; n++) {
        char url[64];
        snprintf(url, sizeof url, "https://127.0.0.1:%u", t->kme[n].port);
        json_object_set_new(kmes, t->kme[n].id, json_string(url));
    }
    json_object_set_new(root, "kmes", kmes);
    for (size_t i = 0; i < sc->nsaes; i++)
        json_array_append_new(saes, kagi__sae_json(t, sc->saes[i].id, (long)sc->saes[i].node));
    json_object_set_new(root, "saes", saes);
    free(pairs);
    /* whole or absent: its appearance means the testbed is ready */
    (void)kagi__path(p, sizeof p, "%s/endpoints.json", t->dir);
    (void)kagi__path(tmp, sizeof tmp, "%s/endpoints.json.tmp", t->dir);
    int bad = json_dump_file(root, tmp, JSON_INDENT(2)) != 0 || rename(tmp, p) != 0;
    json_decref(root);
    if (bad) {
        unlink(tmp);
        return kagi__fail(t, "%s: cannot write it: %s", p, strerror(errno));
    }
    return KAGI_EXIT_OK;
}

/* ---- the run ---- */

/* Wait until every KME serves and has ingested the first blocks. */
static int kagi__wait_ready(kagi__tb *t)
{
    const size_t nn = t->sc->nnodes;
    double t0 = kagi__now();
    for (;;) {
        int st;
        long who = kagi__reap(t, &st);
        if (who >= 0) {
            kagi__describe_exit(t, &t->kme[who], st, "before it was ready");
            return KAGI_EXIT_FAIL;
        }
        if (kagi__stop_sig) return KAGI_EXIT_OK;
        size_t ready = 0;
        for (size_t n = 0; n < nn; n++) {
            char p[PATH_MAX];
            if (!t->kme[n].ready && !kagi__path(p, sizeof p, "%s/ready", t->kme[n].dir))
                t->kme[n].ready = kagi__exists(p);
            ready += t->kme[n].ready != 0;
        }
        const kagi__tlink *behind = NULL;
        for (size_t i = 0; i < t->nlinks && !behind; i++)
            if (kagi__spooled(t->links[i].spool[0]) || kagi__spooled(t->links[i].spool[1]))
                behind = &t->links[i];
        if (ready == nn && !behind) return KAGI_EXIT_OK;
        if (kagi__now() - t0 > KAGI__READY_S) {
            for (size_t n = 0; n < nn; n++)
                if (!t->kme[n].ready)
                    return kagi__fail(t, "KME %s is not ready after %.0f s: see %s/kme.log",
                                      t->kme[n].id, KAGI__READY_S, t->kme[n].dir);
            return kagi__fail(t, "link %s: the KMEs have not taken the first blocks from %s "
                              "after %.0f s: see the logs of KMEs %s and %s", behind->name,
                              behind->spool[0], KAGI__READY_S, t->kme[behind->a].id,
                              t->kme[behind->b].id);
        }
        kagi__sleep_ms(20);
    }
}

static void kagi__announce(const kagi__tb *t)
{
    const kagi_scenario *sc = t->sc;
    for (size_t n = 0; n < sc->nnodes; n++) {
        const kagi__tkme *k = &t->kme[n];
        printf("KME %-12s https://127.0.0.1:%-5u  SAEs:", k->id, k->port);
        size_t shown = 0;
        for (size_t i = 0; i < sc->nsaes; i++)
            if (sc->saes[i].node == n) printf("%s%s", shown++ ? "," : " ", sc->saes[i].id);
        if (!shown) printf(" none");
        printf("  links:");
        shown = 0;
        for (size_t i = 0; i < t->nlinks; i++)
            if (t->links[i].a == n || t->links[i].b == n) printf("%s%s", shown++ ? "," : " ", t->links[i].name);
        printf("  log: %s/kme.log\n", k->dir);
    }
    printf("testbed ready: %zu KMEs, endpoints in %s/endpoints.json\n", sc->nnodes, t->dir);
    printf("(SIGINT or SIGTERM stops it)\n");
    fflush(stdout);
}

static int kagi__options(kagi__tb *t)
{
    kagi_cli_cmd *cmd = t->cmd;
    int rc = kagi_cli_double(cmd, "speedup", 0, 1e9, &t->speedup);
    if (rc) return rc;
    size_t v = t->block_bytes;
    if ((rc = kagi_cli_size(cmd, "block-bytes", 1, &v))) return rc;
    if (v > KAGI_MAX_BLOCK_BYTES)
        return kagi_cli_usage_error(cmd, "--block-bytes: at most %u (16 MiB), got %zu",
                                    KAGI_MAX_BLOCK_BYTES, v);
    t->block_bytes = v;
    v = 0;
    if ((rc = kagi_cli_size(cmd, "max-key", 1, &v))) return rc;
    t->max_key = v;
    return KAGI_EXIT_OK;
}

/* ---- --serve: the testbed on the dashboard (docs/dashboard.md) -------------
 *
 * Read-only and counts only: per link the key its simulated device wrote
 * (bytes, rate); per KME the pool levels it reports through ETSI status
 * calls, made as an SAE of that node with its certificate (only
 * stored_key_count, max_key_count and key_size are read from the answer;
 * no key is ever asked for, and nothing from a KME is passed on as is). */

#define KAGI__STATUS_S 1.0      /* status calls every second */
#define KAGI__PUBLISH_S 0.25    /* a state four times a second */
#define KAGI__STATUS_MAX 64     /* status calls per round at most */

typedef struct kagi__tstat {
    size_t link, master, slave; /* scenario link; SAE indices */
    long stored, max, size;     /* -1: no answer yet */
} kagi__tstat;

typedef struct kagi__tdash {
    kagi__tb *t;
    kagi_live *live;
    kagi_buf topo;
    kagi_serve *srv;
    SSL_CTX **ctx;              /* per SAE, its certificate; NULL where unused */
    kagi__tstat *st;
    size_t nst, next_st;        /* the call a round starts with */
    double t0, last_status, last_pub, last_rate;
    uint64_t seq, *prev;        /* bytes written at the last rate update */
    double *rate;               /* bit/s written, per link */
} kagi__tdash;

static void kagi__tapi(void *ctx, const char *path, size_t len, const char *q, size_t ql,
                       kagi_serve_reply *r)
{
    kagi__tdash *d = ctx;
    (void)q;
    (void)ql;
    if (len == strlen("/api/topology") && !memcmp(path, "/api/topology", len)) {
        kagi_buf_put(&r->body, d->topo.p, d->topo.len);
        r->status = 200;
    }
}

static SSL_CTX *kagi__sae_ctx(const kagi__tb *t, const char *id)
{
    char cert[PATH_MAX], key[PATH_MAX], ca[PATH_MAX];
    if (kagi__path(cert, sizeof cert, "%s/pki/%s.pem", t->dir, id) ||
        kagi__path(key, sizeof key, "%s/pki/%s.key", t->dir, id) ||
        kagi__path(ca, sizeof ca, "%s/pki/ca.pem", t->dir))
        return NULL;
    SSL_CTX *c = SSL_CTX_new(TLS_client_method());
    if (!c || SSL_CTX_use_certificate_file(c, cert, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_use_PrivateKey_file(c, key, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_load_verify_locations(c, ca, NULL) != 1) {
        SSL_CTX_free(c);
        ERR_clear_error();
        return NULL;
    }
    SSL_CTX_set_verify(c, SSL_VERIFY_PEER, NULL);
    return c;
}

/* One ETSI status call (GET .../SLAVE/status) at the KME kme_id on port
 * (its certificate must name it); the three counts, or -1 when it did not
 * answer 200 with them. */
static void kagi__status_call(SSL_CTX *c, unsigned port, const char *kme_id, const char *slave,
                              kagi__tstat *out)
{
    out->stored = out->max = out->size = -1;
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return;
    struct timeval tv = {1, 0}; /* a KME that stalls costs the testbed a second at most */
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    SSL *ssl = NULL;
    char buf[16384];
    size_t n = 0;
    char cn[KAGI_SAE_ID_MAX + 2] = "";
    if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0 && (ssl = SSL_new(c)) &&
        SSL_set_fd(ssl, fd) == 1 && SSL_connect(ssl) == 1 && SSL_get0_peer_certificate(ssl) &&
        X509_NAME_get_text_by_NID(X509_get_subject_name(SSL_get0_peer_certificate(ssl)),
                                  NID_commonName, cn, sizeof cn) > 0 && !strcmp(cn, kme_id)) {
        char req[256];
        int rl = snprintf(req, sizeof req, "GET /api/v1/keys/%s/status HTTP/1.1\r\nHost: "
                          "127.0.0.1\r\nConnection: close\r\n\r\n", slave);
        if (SSL_write(ssl, req, rl) == rl)
            for (int r; n < sizeof buf - 1 &&
                        (r = SSL_read(ssl, buf + n, (int)(sizeof buf - 1 - n))) > 0;)
                n += (size_t)r;
    }
    buf[n] = 0;
    ERR_clear_error();
    if (ssl) SSL_free(ssl);
    close(fd);
    char *body = strstr(buf, "\r\n\r\n");
    if (strncmp(buf, "HTTP/1.1 200 ", 13) || !body) return;
    json_t *j = json_loads(body + 4, 0, NULL);
    json_t *s = json_object_get(j, "stored_key_count"), *m = json_object_get(j, "max_key_count"),
           *z = json_object_get(j, "key_size");
    if (json_is_integer(s) && json_is_integer(m) && json_is_integer(z)) {
        out->stored = (long)json_integer_value(s);
        out->max = (long)json_integer_value(m);
        out->size = (long)json_integer_value(z);
    }
    json_decref(j);
}

/* The status calls to make: per scenario link, the first SAE at one end
 * asks about the first SAE at the other, both ways. */
static int kagi__tdash_plan(kagi__tdash *d)
{
    const kagi_scenario *sc = d->t->sc;
    d->st = calloc(2 * sc->nlinks + 1, sizeof *d->st);
    d->ctx = calloc(sc->nsaes + 1, sizeof *d->ctx);
    d->prev = calloc(sc->nlinks + 1, sizeof *d->prev);
    d->rate = calloc(sc->nlinks + 1, sizeof *d->rate);
    if (!d->st || !d->ctx || !d->prev || !d->rate) return -1;
    for (size_t i = 0; i < sc->nlinks && d->nst < KAGI__STATUS_MAX; i++)
        for (int e = 0; e < 2; e++) {
            size_t from = e ? sc->links[i].b : sc->links[i].a;
            size_t to = e ? sc->links[i].a : sc->links[i].b;
            long m = -1, s = -1;
            for (size_t k = 0; k < sc->nsaes; k++) {
                if (m < 0 && sc->saes[k].node == from) m = (long)k;
                if (s < 0 && sc->saes[k].node == to) s = (long)k;
            }
            if (m < 0 || s < 0) continue;
            if (!d->ctx[m] && !(d->ctx[m] = kagi__sae_ctx(d->t, sc->saes[m].id))) continue;
            d->st[d->nst++] = (kagi__tstat){(size_t)i, (size_t)m, (size_t)s, -1, -1, -1};
        }
    return 0;
}

static void kagi__tdash_free(kagi__tdash *d)
{
    for (size_t k = 0; d->ctx && k < d->t->sc->nsaes; k++) SSL_CTX_free(d->ctx[k]);
    free(d->ctx);
    free(d->st);
    free(d->prev);
    free(d->rate);
    kagi_serve_free(d->srv);
    kagi_live_free(d->live);
    kagi_buf_free(&d->topo);
}

/* The testbed's state: per scenario link the key written and its rate,
 * the pool one end's KME reports (bits, or null), per node whether its
 * KME runs and what its status calls said. */
static int kagi__tdash_publish(kagi__tdash *d, double now)
{
    const kagi_scenario *sc = d->t->sc;
    kagi_buf b;
    kagi_buf_init(&b, (size_t)64 << 20);
    kagi_buf_printf(&b, "{\"mode\": \"testbed\", \"seq\": %llu, \"t_s\": %.3f, \"end_s\": null, "
             "\"done\": false, \"samples\": 0,\n\"links\": {\"generated_bits\": [",
             (unsigned long long)++d->seq, now - d->t0);
    for (size_t i = 0; i < sc->nlinks; i++)
        kagi_buf_printf(&b, "%s%llu", i ? "," : "", (unsigned long long)d->t->links[i].written * 8);
    kagi_buf_printf(&b, "],\n\"rate_bps\": [");
    for (size_t i = 0; i < sc->nlinks; i++) kagi_buf_printf(&b, "%s%.6g", i ? "," : "", d->rate[i]);
    static const char *const col[] = {"pool_bits", "capacity_bits"};
    for (int c = 0; c < 2; c++) {
        kagi_buf_printf(&b, "],\n\"%s\": [", col[c]);
        for (size_t i = 0; i < sc->nlinks; i++) {
            const kagi__tstat *best = NULL;
            for (size_t k = 0; k < d->nst && !best; k++)
                if (d->st[k].link == i && d->st[k].stored >= 0) best = &d->st[k];
            if (!best) kagi_buf_printf(&b, "%snull", i ? "," : "");
            else kagi_buf_printf(&b, "%s%lld", i ? "," : "",
                          (long long)(c ? best->max : best->stored) * best->size);
        }
    }
    kagi_buf_printf(&b, "],\n\"state\": [");
    for (size_t i = 0; i < sc->nlinks; i++) {
        const kagi__tlink *l = &d->t->links[i];
        int up = d->t->kme[l->a].pid && d->t->kme[l->b].pid;
        kagi_buf_printf(&b, "%s%d", i ? "," : "", up ? KAGI_SIM_UP : KAGI_SIM_NODE_DOWN);
    }
    kagi_buf_printf(&b, "]},\n\"nodes\": {\"up\": [");
    for (size_t n = 0; n < sc->nnodes; n++)
        kagi_buf_printf(&b, "%s%d", n ? "," : "", d->t->kme[n].pid != 0);
    kagi_buf_printf(&b, "]},\n\"kmes\": [");
    for (size_t n = 0; n < sc->nnodes; n++) {
        kagi_buf_printf(&b, "%s[", n ? ",\n" : "");
        int first = 1;
        for (size_t k = 0; k < d->nst; k++) {
            const kagi__tstat *s = &d->st[k];
            if (sc->saes[s->master].node != n) continue;
            kagi_buf_printf(&b, "%s{\"master\": \"%s\", \"slave\": \"%s\", \"stored_key_count\": %ld, "
                     "\"max_key_count\": %ld, \"key_size\": %ld}", first ? "" : ", ",
                     sc->saes[s->master].id, sc->saes[s->slave].id, s->stored, s->max, s->size);
            first = 0;
        }
        kagi_buf_printf(&b, "]");
    }
    kagi_buf_printf(&b, "],\n\"satellites\": [], \"passes_now\": [], \"events_applied\": 0, "
             "\"events\": []}\n");
    int rc = b.err ? b.err : kagi_serve_publish(d->srv, (const char *)b.p, b.len);
    kagi_buf_free(&b);
    return rc;
}

/* Between two device rounds: serve the page for up to ms, refresh the
 * rates and statuses when due, publish. */
static int kagi__tdash_step(kagi__tdash *d, int ms)
{
    if (kagi_serve_poll(d->srv, ms) != KAGI_OK) return KAGI_EXIT_FAIL;
    double now = kagi__now();
    const kagi_scenario *sc = d->t->sc;
    if (now - d->last_rate >= KAGI__STATUS_S) {
        for (size_t i = 0; i < sc->nlinks; i++) {
            d->rate[i] = (double)(d->t->links[i].written - d->prev[i]) * 8 / (now - d->last_rate);
            d->prev[i] = d->t->links[i].written;
        }
        d->last_rate = now;
    }
    if (now - d->last_status >= KAGI__STATUS_S) {
        /* a round that takes over half a second (a KME stalls) is cut
         * short, so the devices keep their pace; the next round goes on */
        size_t from = d->next_st;
        for (size_t k = 0; k < d->nst && !kagi__stop_sig && kagi__now() - now < 0.5; k++) {
            kagi__tstat *s = &d->st[(from + k) % d->nst];
            const kagi__tkme *kme = &d->t->kme[sc->saes[s->master].node];
            if (kme->pid)
                kagi__status_call(d->ctx[s->master], kme->port, kme->id, sc->saes[s->slave].id, s);
            d->next_st = (from + k + 1) % d->nst;
        }
        d->last_status = kagi__now();
    }
    if (now - d->last_pub >= KAGI__PUBLISH_S) {
        d->last_pub = now;
        if (kagi__tdash_publish(d, now) != KAGI_OK) return KAGI_EXIT_FAIL;
    }
    return KAGI_EXIT_OK;
}

static int kagi__tdash_start(kagi__tdash *d, kagi__tb *t)
{
    d->t = t;
    kagi_buf_init(&d->topo, (size_t)64 << 20);
    if (kagi_live_new(t->sim, &d->live) != KAGI_OK ||
        kagi_live_topology(d->live, "testbed", &d->topo) != KAGI_OK || kagi__tdash_plan(d) != 0)
        return kagi__fail(t, "dashboard: %s", kagi_errdetail());
    int rc = kagi_cli_dash_start(t->cmd, kagi__tapi, d, &d->srv);
    if (rc) return rc;
    d->t0 = d->last_rate = kagi__now();
    for (size_t i = 0; i < t->sc->nlinks; i++) d->prev[i] = t->links[i].written;
    return KAGI_EXIT_OK;
}

static int kagi__testbed(kagi__tb *t)
{
    const kagi_scenario *sc = t->sc;
    int serve = kagi_cli_flag(t->cmd, "serve");
    if (!serve && (kagi_cli_get(t->cmd, "listen") || kagi_cli_get(t->cmd, "web")))
        return kagi_cli_usage_error(t->cmd, "--listen and --web go with --serve");
    char web[PATH_MAX];
    if (serve && kagi_serve_find_web(kagi_cli_get(t->cmd, "web"), web, sizeof web) != KAGI_OK)
        return kagi_cli_usage_error(t->cmd, "%s", kagi_errdetail()); /* before any KME starts */
    int rc = kagi__check_names(t);
    if (rc) return rc;
    if ((rc = kagi__prepare_dir(t, kagi_cli_get(t->cmd, "dir"), kagi_cli_flag(t->cmd, "force"))))
        return rc;
    if (kagi_sim_new(sc, NULL, &t->sim) != KAGI_OK) {
        fprintf(stderr, "kagi %s: %s\n", t->cmd->name, kagi_errdetail());
        return KAGI_EXIT_USAGE;
    }
    t->kme = calloc(sc->nnodes, sizeof *t->kme);
    if (!t->kme) return kagi__fail(t, "out of memory");
    for (size_t n = 0; n < sc->nnodes; n++) {
        t->kme[n].id = sc->nodes[n].name;
        if (kagi__path(t->kme[n].dir, PATH_MAX, "%s/%s", t->dir, sc->nodes[n].name))
            return kagi__fail(t, "%s: path too long", t->dir);
    }
    for (size_t i = 0; i < sc->nsaes; i++) t->kme[sc->saes[i].node].nsaes++;
    if ((rc = kagi__plan_links(t)) || (rc = kagi__ports(t)) || (rc = kagi__lay_out(t))) return rc;

    char pidf[PATH_MAX];
    (void)kagi__path(pidf, sizeof pidf, "%s/testbed.pid", t->dir);
    FILE *f = fopen(pidf, "w");
    if (!f || fprintf(f, "%ld\n", (long)getpid()) < 0 || fclose(f) != 0)
        return kagi__fail(t, "%s: %s", pidf, strerror(errno));

    uint8_t *buf = malloc(t->block_bytes);
    if (!buf) return kagi__fail(t, "out of memory");
    for (size_t i = 0; i < t->nlinks; i++) {
        kagi__tlink *l = &t->links[i];
        printf("link %-20s %s - %s: %.4g bit/s x %g%s\n", l->name, sc->nodes[l->a].name,
               sc->nodes[l->b].name, l->bytes_s * 8 / t->speedup, t->speedup,
               l->a == l->b ? " (loopback: SAEs of one KME)" : "");
        /* the first blocks before the KMEs start: no pool is empty at "ready" */
        for (int b = 0; !rc && l->bytes_s > 0 && b < KAGI__FIRST_BLOCKS && !kagi__done(t, l); b++) {
            l->credit = (double)t->block_bytes;
            rc = kagi__write_block(t, l, buf);
        }
        l->credit = 0;
    }
    fflush(stdout);

    kagi_cli_on_stop(kagi__on_signal);

    for (size_t n = 0; !rc && n < sc->nnodes; n++) rc = kagi__spawn(t, n);
    if (!rc) rc = kagi__wait_ready(t);
    if (!rc && !kagi__stop_sig) rc = kagi__write_endpoints(t);
    kagi__tdash dash;
    memset(&dash, 0, sizeof dash);
    if (!rc && !kagi__stop_sig) {
        kagi__announce(t);
        if (serve) rc = kagi__tdash_start(&dash, t);
        double last = kagi__now();
        while (!rc && !kagi__stop_sig) {
            if (serve) rc = kagi__tdash_step(&dash, 20);
            else kagi__sleep_ms(20);
            if (rc) break;
            double now = kagi__now();
            rc = kagi__pace(t, now - last, buf);
            last = now;
            int st;
            long who = kagi__reap(t, &st);
            if (who >= 0) {
                kagi__describe_exit(t, &t->kme[who], st, "while the testbed ran");
                rc = KAGI_EXIT_FAIL;
            }
        }
    }
    free(buf);
    if (serve) kagi__tdash_free(&dash);
    int stopped_by = kagi__stop_sig;
    size_t running = 0;
    for (size_t n = 0; n < sc->nnodes; n++) running += t->kme[n].pid != 0;
    int bad = kagi__stop_all(t);
    unlink(pidf);
    if (stopped_by && !rc) {
        printf("testbed stopped (%s): %zu KMEs stopped%s\n", strsignal(stopped_by), running,
               bad ? ", not all cleanly" : " cleanly");
        fflush(stdout);
        return bad ? KAGI_EXIT_FAIL : KAGI_EXIT_OK;
    }
    return rc ? rc : KAGI_EXIT_FAIL;
}

static int kagi__run(kagi_cli_cmd *cmd)
{
    kagi__tb t;
    memset(&t, 0, sizeof t);
    t.cmd = cmd;
    t.speedup = 1000;
    t.block_bytes = 4096;
    int rc = kagi__options(&t);
    if (rc) return rc;
    kagi_scenario *sc = NULL;
    int e = kagi_scenario_load(kagi_cli_get(cmd, "scenario"), &sc);
    if (e != KAGI_OK) {
        fprintf(stderr, "kagi %s: %s\n", cmd->name, kagi_errdetail());
        return e == KAGI_ERR_IO || e == KAGI_ERR_NOMEM ? KAGI_EXIT_FAIL : KAGI_EXIT_USAGE;
    }
    t.sc = sc;
    rc = kagi__testbed(&t);
    kagi_sim_free(t.sim);
    free(t.links);
    free(t.kme);
    kagi_scenario_free(sc);
    return rc;
}

kagi_cli_cmd kagi_cmd_testbed = {
    "testbed", "run a scenario's network as real KMEs on loopback, with simulated QKD links",
    "SCENARIO --dir DIR [--speedup X] [--block-bytes N] [--max-key BYTES] [--force] "
    "[--serve [ADDR:PORT] [--web DIR]]",
    "Starts one KME daemon (kagi kme) per node of the scenario on a free\n"
    "127.0.0.1 port, with a throwaway PKI (a CA, a certificate per KME, per SAE\n"
    "of the scenario's saes: and for an outsider no KME lists), and acts as the\n"
    "QKD device of every link: identical random key blocks into both ends'\n"
    "spools at the link model's rate times --speedup. Routes between KMEs that\n"
    "share no link come from the simulator's routing. Once every KME serves,\n"
    "writes DIR/endpoints.json (the SAE pairs of the demands naming master and\n"
    "slave, most hops first, with their KME URLs, certificates and keys) and\n"
    "prints \"testbed ready\". Runs until SIGINT or SIGTERM, then stops the KMEs\n"
    "with SIGTERM and exits 0. A KME that fails to start or stops early ends the\n"
    "testbed with exit 1, naming its log. See docs/testbed.md. --serve shows it on\n"
    "a live web dashboard (docs/dashboard.md).",
    kagi__opts, kagi__run};
