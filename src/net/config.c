/* The KME configuration file: "key = value" lines, "#" comments, and
 * "[link NAME]" sections for the links and their key sources. Every error
 * names the file, the line and the key. docs/kme.md lists the keys. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "kagi/kme.h"

typedef struct kagi__cfgctx {
    const char *name;
    unsigned line;
    const char *key;
} kagi__cfgctx;

static int kagi__cfail(const kagi__cfgctx *x, const char *fmt, ...) KAGI__PRINTF(2, 3);
static int kagi__cfail(const kagi__cfgctx *x, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (x->key) return kagi__err(KAGI_ERR_FORMAT, "%s:%u: %s: %s", x->name, x->line, x->key, msg);
    return kagi__err(KAGI_ERR_FORMAT, "%s:%u: %s", x->name, x->line, msg);
}

static int kagi__str(const kagi__cfgctx *x, const char *v, char *out, size_t cap)
{
    size_t n = strlen(v);
    if (n == 0) return kagi__cfail(x, "empty value");
    if (n >= cap) return kagi__cfail(x, "value longer than %zu characters", cap - 1);
    memcpy(out, v, n + 1);
    return KAGI_OK;
}

static int kagi__uint(const kagi__cfgctx *x, const char *v, unsigned long long lo,
                      unsigned long long hi, unsigned long long *out)
{
    char *end;
    errno = 0;
    if (*v == '-' || *v == '+' || *v == ' ') return kagi__cfail(x, "'%s' is not a whole number", v);
    unsigned long long n = strtoull(v, &end, 10);
    if (errno || end == v || *end) return kagi__cfail(x, "'%s' is not a whole number", v);
    if (n < lo || n > hi) return kagi__cfail(x, "%llu is outside %llu..%llu", n, lo, hi);
    *out = n;
    return KAGI_OK;
}

static int kagi__u(const kagi__cfgctx *x, const char *v, unsigned long long lo, unsigned long long hi,
                   unsigned *out)
{
    unsigned long long n;
    KAGI__TRY(kagi__uint(x, v, lo, hi, &n));
    *out = (unsigned)n;
    return KAGI_OK;
}

static int kagi__dbl(const kagi__cfgctx *x, const char *v, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double d = strtod(v, &end);
    if (errno || end == v || *end || !isfinite(d)) return kagi__cfail(x, "'%s' is not a number", v);
    if (d < lo || d > hi) return kagi__cfail(x, "%g is outside %g..%g", d, lo, hi);
    *out = d;
    return KAGI_OK;
}

static int kagi__id(const kagi__cfgctx *x, const char *v, char *out)
{
    if (!kagi_etsi_valid_id(v, strlen(v)))
        return kagi__cfail(x, "'%s' is not a valid id (1 to %d of A-Z a-z 0-9 . _ ~ -)", v, KAGI_SAE_ID_MAX);
    strcpy(out, v);
    return KAGI_OK;
}

static int kagi__hostport(const kagi__cfgctx *x, const char *v, char *host, size_t cap, unsigned *port,
                          unsigned min_port)
{
    const char *colon = strrchr(v, ':');
    if (!colon || colon == v) return kagi__cfail(x, "'%s' is not HOST:PORT", v);
    size_t hl = (size_t)(colon - v);
    if (hl >= cap) return kagi__cfail(x, "host too long");
    memcpy(host, v, hl);
    host[hl] = '\0';
    return kagi__u(x, colon + 1, min_port, 65535, port);
}

/* "DEST via HOP1,HOP2,...,DEST" */
static int kagi__route_key(const kagi__cfgctx *x, kagi_kme_config *c, const char *v)
{
    kagi_kme_route_cfg r;
    memset(&r, 0, sizeof r);
    const char *via = strstr(v, " via ");
    if (!via) return kagi__cfail(x, "expected \"DEST via HOP1,HOP2,...,DEST\"");
    size_t dl = (size_t)(via - v);
    while (dl && v[dl - 1] == ' ') dl--;
    if (!kagi_etsi_valid_id(v, dl)) return kagi__cfail(x, "'%.*s' is not a valid KME id", (int)dl, v);
    memcpy(r.dest, v, dl);
    const char *p = via + 5;
    for (;;) {
        while (*p == ' ') p++;
        const char *e = strchr(p, ',');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        while (l && p[l - 1] == ' ') l--;
        if (r.n_hops == KAGI_ROUTE_MAX) return kagi__cfail(x, "more than %d hops", KAGI_ROUTE_MAX);
        if (!kagi_etsi_valid_id(p, l)) return kagi__cfail(x, "hop '%.*s' is not a valid KME id", (int)l, p);
        memcpy(r.hops[r.n_hops], p, l);
        for (unsigned i = 0; i < r.n_hops; i++)
            if (!strcmp(r.hops[i], r.hops[r.n_hops])) return kagi__cfail(x, "KME %s appears twice", r.hops[i]);
        r.n_hops++;
        if (!e) break;
        p = e + 1;
    }
    if (strcmp(r.hops[r.n_hops - 1], r.dest) != 0)
        return kagi__cfail(x, "the path must end at %s", r.dest);
    for (size_t i = 0; i < c->n_routes; i++)
        if (!strcmp(c->routes[i].dest, r.dest)) return kagi__cfail(x, "a second route to %s", r.dest);
    kagi_kme_route_cfg *a = realloc(c->routes, (c->n_routes + 1) * sizeof *a);
    if (!a) return kagi__err(KAGI_ERR_NOMEM, "out of memory");
    c->routes = a;
    c->routes[c->n_routes++] = r;
    return KAGI_OK;
}

static int kagi__link_key(const kagi__cfgctx *x, kagi_kme_link_cfg *l, const char *k, const char *v)
{
    kagi_link *m = &l->model;
    if (!strcmp(k, "peer")) return kagi__id(x, v, l->peer);
    if (!strcmp(k, "source")) {
        if (!strcmp(v, "sim")) l->source = KAGI_SOURCE_SIM;
        else if (!strcmp(v, "dir")) l->source = KAGI_SOURCE_DIR;
        else if (!strcmp(v, "none")) l->source = KAGI_SOURCE_NONE;
        else return kagi__cfail(x, "'%s' is not a source (sim, dir or none)", v);
        return KAGI_OK;
    }
    if (!strcmp(k, "protocol"))
        return kagi_protocol_parse(v, &l->protocol) ? kagi__cfail(x, "%s", kagi_errdetail()) : KAGI_OK;
    if (!strcmp(k, "distance_km")) return kagi__dbl(x, v, 0, 1e5, &m->distance_km);
    if (!strcmp(k, "fiber_loss")) return kagi__dbl(x, v, 0, 10, &m->fiber_loss_db_km);
    if (!strcmp(k, "extra_loss")) return kagi__dbl(x, v, 0, 200, &m->extra_loss_db);
    if (!strcmp(k, "detector_efficiency")) return kagi__dbl(x, v, 0, 1, &m->det_eff);
    if (!strcmp(k, "dark_count")) return kagi__dbl(x, v, 0, 1, &m->dark_count);
    if (!strcmp(k, "misalignment")) return kagi__dbl(x, v, 0, 0.5, &m->misalignment);
    if (!strcmp(k, "afterpulse")) return kagi__dbl(x, v, 0, 1, &m->afterpulse);
    if (!strcmp(k, "clock_hz")) return kagi__dbl(x, v, 1, 1e12, &m->clock_hz);
    if (!strcmp(k, "mu")) return kagi__dbl(x, v, 0, 10, &m->mu[0]);
    if (!strcmp(k, "finite_block")) return kagi__dbl(x, v, 0, 1e15, &l->finite_block);
    if (!strcmp(k, "rate_bps")) return kagi__dbl(x, v, 0, 1e12, &l->rate_bps);
    if (!strcmp(k, "speedup")) return kagi__dbl(x, v, 1e-3, 1e9, &l->speedup);
    if (!strcmp(k, "block_bytes")) {
        unsigned long long n;
        KAGI__TRY(kagi__uint(x, v, 1, KAGI_MAX_BLOCK_BYTES, &n));
        l->block_bytes = (size_t)n;
        return KAGI_OK;
    }
    if (!strcmp(k, "dir")) return kagi__str(x, v, l->dir, sizeof l->dir);
    if (!strcmp(k, "poll_ms")) return kagi__u(x, v, 1, 3600000, &l->poll_ms);
    if (!strcmp(k, "peer_address")) return kagi__hostport(x, v, l->peer_host, sizeof l->peer_host, &l->peer_port, 1);
    return kagi__cfail(x, "unknown key in a [link] section");
}

static int kagi__top_key(const kagi__cfgctx *x, kagi_kme_config *c, const char *k, const char *v)
{
    unsigned long long n;
    if (!strcmp(k, "kme_id")) return kagi__id(x, v, c->kme_id);
    if (!strcmp(k, "listen")) return kagi__hostport(x, v, c->listen_host, sizeof c->listen_host, &c->port, 0);
    if (!strcmp(k, "route")) return kagi__route_key(x, c, v);
    if (!strcmp(k, "cert")) return kagi__str(x, v, c->cert, sizeof c->cert);
    if (!strcmp(k, "key")) return kagi__str(x, v, c->key, sizeof c->key);
    if (!strcmp(k, "client_ca")) return kagi__str(x, v, c->client_ca, sizeof c->client_ca);
    if (!strcmp(k, "store")) return kagi__str(x, v, c->store, sizeof c->store);
    if (!strcmp(k, "store_key")) return kagi__str(x, v, c->store_key, sizeof c->store_key);
    if (!strcmp(k, "log")) return kagi__str(x, v, c->log, sizeof c->log);
    if (!strcmp(k, "ready_file")) return kagi__str(x, v, c->ready_file, sizeof c->ready_file);
    if (!strcmp(k, "log_level")) {
        static const char *const lv[] = {"error", "warn", "info", "debug"};
        for (int i = 0; i < 4; i++)
            if (!strcmp(v, lv[i])) {
                c->log_level = i;
                return KAGI_OK;
            }
        return kagi__cfail(x, "'%s' is not a level (error, warn, info, debug)", v);
    }
    if (!strcmp(k, "key_size")) return kagi__u(x, v, 8, 32768, &c->key_size);
    if (!strcmp(k, "min_key_size")) return kagi__u(x, v, 8, 65536, &c->min_key_size);
    if (!strcmp(k, "max_key_size")) return kagi__u(x, v, 8, 65536, &c->max_key_size);
    if (!strcmp(k, "max_keys_per_request")) return kagi__u(x, v, 1, KAGI_ETSI_MAX_IDS, &c->max_keys_per_request);
    if (!strcmp(k, "max_sae_id_count")) return kagi__u(x, v, 0, KAGI_MAX_SLAVES - 1, &c->max_sae_id_count);
    if (!strcmp(k, "max_key_count")) {
        KAGI__TRY(kagi__uint(x, v, 1, (unsigned long long)1 << 40, &n));
        c->max_key_count = n;
        return KAGI_OK;
    }
    if (!strcmp(k, "body_limit")) {
        KAGI__TRY(kagi__uint(x, v, 256, 16u << 20, &n));
        c->body_limit = (size_t)n;
        return KAGI_OK;
    }
    if (!strcmp(k, "header_limit")) {
        KAGI__TRY(kagi__uint(x, v, 512, 1u << 20, &n));
        c->header_limit = (size_t)n;
        return KAGI_OK;
    }
    if (!strcmp(k, "timeout")) return kagi__u(x, v, 1, 3600, &c->timeout_s);
    if (!strcmp(k, "max_connections")) return kagi__u(x, v, 1, 100000, &c->max_connections);
    if (!strcmp(k, "workers")) return kagi__u(x, v, 1, 64, &c->workers);
    if (!strcmp(k, "commit_interval_us")) {
        c->commit_pacing = !strcmp(v, "auto");
        if (c->commit_pacing) {
            c->commit_interval_us = 0;
            return KAGI_OK;
        }
        return kagi__u(x, v, 0, 1000000, &c->commit_interval_us);
    }
    if (!strcmp(k, "pending_ttl")) return kagi__u(x, v, 0, 100u * 365 * 86400, &c->pending_ttl_s);
    if (!strcmp(k, "sae")) {
        kagi_kme_sae_cfg s = {{0}, {0}};
        const char *at = strchr(v, '@');
        size_t il = at ? (size_t)(at - v) : strlen(v);
        if (!kagi_etsi_valid_id(v, il))
            return kagi__cfail(x, "'%.*s' is not a valid SAE id", (int)il, v);
        memcpy(s.id, v, il);
        if (at && !kagi_etsi_valid_id(at + 1, strlen(at + 1)))
            return kagi__cfail(x, "'%s' is not a valid KME id", at + 1);
        snprintf(s.kme, sizeof s.kme, "%s", at ? at + 1 : "");
        for (size_t i = 0; i < c->n_saes; i++)
            if (!strcmp(c->saes[i].id, s.id)) return kagi__cfail(x, "SAE %s listed twice", s.id);
        kagi_kme_sae_cfg *a = realloc(c->saes, (c->n_saes + 1) * sizeof *a);
        if (!a) return kagi__err(KAGI_ERR_NOMEM, "out of memory");
        c->saes = a;
        c->saes[c->n_saes++] = s;
        return KAGI_OK;
    }
    return kagi__cfail(x, "unknown key");
}

static void kagi__link_defaults(kagi_kme_link_cfg *l)
{
    memset(l, 0, sizeof *l);
    kagi_link_defaults(&l->model);
    l->model.distance_km = 20;
    l->protocol = KAGI_PROTO_BB84_DECOY;
    l->speedup = 1;
    l->block_bytes = 4096;
    l->poll_ms = 200;
}

int kagi_kme_link_rate(const kagi_kme_link_cfg *l, double *bps)
{
    if (l->rate_bps > 0) {
        *bps = l->rate_bps;
        return KAGI_OK;
    }
    kagi_rate r;
    kagi_decoys d = l->finite_block > 0 ? KAGI_DECOYS_TWO : KAGI_DECOYS_INFINITE;
    KAGI__TRY(kagi_keyrate(l->protocol, d, &l->model, l->finite_block, &r));
    *bps = r.bps;
    return KAGI_OK;
}

static int kagi__finish(kagi_kme_config *c, const char *name)
{
    kagi__cfgctx x = {name, 0, NULL};
    if (!c->kme_id[0]) return kagi__cfail(&x, "kme_id is missing");
    if (!c->listen_host[0]) return kagi__cfail(&x, "listen is missing");
    static const struct { size_t off; const char *k; } req[] = {
        {offsetof(kagi_kme_config, cert), "cert"},
        {offsetof(kagi_kme_config, key), "key"},
        {offsetof(kagi_kme_config, client_ca), "client_ca"},
        {offsetof(kagi_kme_config, store), "store"},
        {offsetof(kagi_kme_config, store_key), "store_key"},
    };
    for (size_t i = 0; i < sizeof req / sizeof req[0]; i++)
        if (!((char *)c + req[i].off)[0]) return kagi__cfail(&x, "%s is missing", req[i].k);
    if (c->key_size % 8 || c->min_key_size % 8 || c->max_key_size % 8)
        return kagi__cfail(&x, "key_size, min_key_size and max_key_size must be multiples of 8");
    if (c->min_key_size > c->key_size || c->key_size > c->max_key_size)
        return kagi__cfail(&x, "min_key_size %u <= key_size %u <= max_key_size %u does not hold",
                           c->min_key_size, c->key_size, c->max_key_size);
    for (size_t i = 0; i < c->n_saes; i++)
        if (!c->saes[i].kme[0]) strcpy(c->saes[i].kme, c->kme_id);
    for (size_t i = 0; i < c->n_links; i++) {
        kagi_kme_link_cfg *l = &c->links[i];
        x.key = NULL;
        if (!l->peer[0]) return kagi__cfail(&x, "link %s: peer is missing", l->name);
        for (size_t j = 0; j < i; j++)
            if (!strcmp(c->links[j].name, l->name)) return kagi__cfail(&x, "link %s defined twice", l->name);
        if (strcmp(l->peer, c->kme_id) != 0) {
            if (!l->peer_host[0])
                return kagi__cfail(&x, "link %s: peer_address is missing (the address of KME %s)", l->name,
                                   l->peer);
            if (l->source == KAGI_SOURCE_SIM)
                return kagi__cfail(&x, "link %s: source sim draws key at one end only; a link to another "
                                   "KME needs the same blocks at both ends (source dir, which kagi testbed "
                                   "feeds)", l->name);
            /* its second half is stored as NAME+ (docs/peer.md) */
            if (strlen(l->name) > KAGI_LINK_NAME_MAX - 1)
                return kagi__cfail(&x, "link %s: a link to another KME has a name of at most %d characters",
                                   l->name, KAGI_LINK_NAME_MAX - 1);
        }
        if (l->source == KAGI_SOURCE_DIR && !l->dir[0])
            return kagi__cfail(&x, "link %s: source dir needs dir", l->name);
        if (l->source == KAGI_SOURCE_SIM) {
            double bps = 0;
            if (kagi_kme_link_rate(l, &bps) != KAGI_OK)
                return kagi__cfail(&x, "link %s: %s", l->name, kagi_errdetail());
            if (!(bps > 0))
                return kagi__cfail(&x, "link %s: the model gives no key at %g km", l->name,
                                   l->model.distance_km);
        }
    }
    for (size_t i = 0; i < c->n_saes; i++)
        if (!strcmp(c->saes[i].id, c->kme_id))
            return kagi__cfail(&x, "SAE %s has the id of this KME", c->saes[i].id);
    for (size_t i = 0; i < c->n_routes; i++) {
        const kagi_kme_route_cfg *r = &c->routes[i];
        if (!strcmp(r->dest, c->kme_id)) return kagi__cfail(&x, "route to %s: that is this KME", r->dest);
        for (unsigned j = 0; j < r->n_hops; j++)
            if (!strcmp(r->hops[j], c->kme_id))
                return kagi__cfail(&x, "route to %s: the path passes through this KME", r->dest);
        int adj = 0;
        for (size_t j = 0; j < c->n_links; j++) adj |= !strcmp(c->links[j].peer, r->hops[0]);
        if (!adj) return kagi__cfail(&x, "route to %s: no link reaches its first hop %s", r->dest, r->hops[0]);
    }
    return KAGI_OK;
}

int kagi_kme_config_parse(const char *text, size_t len, const char *name, kagi_kme_config **out)
{
    *out = NULL;
    kagi_kme_config *c = calloc(1, sizeof *c);
    KAGI__FAIL_IF(!c, KAGI_ERR_NOMEM, "out of memory");
    c->log_level = 2;
    c->key_size = 256;
    c->min_key_size = 64;
    c->max_key_size = 8192;
    c->max_keys_per_request = 128;
    c->max_sae_id_count = 4;
    c->max_key_count = 1000000;
    c->body_limit = 65536;
    c->header_limit = 8192;
    c->timeout_s = 10;
    c->max_connections = 1024;
    c->workers = 1;
    c->commit_interval_us = 0;
    c->commit_pacing = 1; /* "auto" */
    c->pending_ttl_s = 86400;
    kagi__cfgctx x = {name, 0, NULL};
    kagi_kme_link_cfg *cur = NULL;
    size_t pos = 0;
    int e = KAGI_OK;
    char line[8192];
    while (!e && pos < len) {
        size_t end = pos;
        while (end < len && text[end] != '\n') end++;
        x.line++;
        x.key = NULL;
        size_t n = end - pos;
        if (n >= sizeof line) {
            e = kagi__cfail(&x, "line longer than %zu characters", sizeof line - 1);
            break;
        }
        memcpy(line, text + pos, n);
        line[n] = '\0';
        pos = end + 1;
        if (memchr(line, '\0', n)) {
            e = kagi__cfail(&x, "NUL byte in the line");
            break;
        }
        char *h = strchr(line, '#');
        if (h) *h = '\0';
        char *s = line;
        while (*s == ' ' || *s == '\t' || *s == '\r') s++;
        char *t = s + strlen(s);
        while (t > s && (t[-1] == ' ' || t[-1] == '\t' || t[-1] == '\r')) *--t = '\0';
        if (!*s) continue;
        if (*s == '[') {
            char lname[64];
            if (sscanf(s, "[link %63[^] \t]]", lname) != 1 || t[-1] != ']') {
                e = kagi__cfail(&x, "expected a section \"[link NAME]\"");
                break;
            }
            size_t ln = strlen(lname);
            if (ln > KAGI_LINK_NAME_MAX || !kagi_etsi_valid_id(lname, ln)) {
                e = kagi__cfail(&x, "link name '%s' must be 1 to %d of A-Z a-z 0-9 . _ ~ -", lname,
                                KAGI_LINK_NAME_MAX);
                break;
            }
            kagi_kme_link_cfg *a = realloc(c->links, (c->n_links + 1) * sizeof *a);
            if (!a) {
                e = kagi__err(KAGI_ERR_NOMEM, "out of memory");
                break;
            }
            c->links = a;
            cur = &c->links[c->n_links++];
            kagi__link_defaults(cur);
            strcpy(cur->name, lname);
            continue;
        }
        char *eq = strchr(s, '=');
        if (!eq) {
            e = kagi__cfail(&x, "expected \"key = value\"");
            break;
        }
        char *k = s, *v = eq + 1;
        char *ke = eq;
        while (ke > k && (ke[-1] == ' ' || ke[-1] == '\t')) ke--;
        *ke = '\0';
        while (*v == ' ' || *v == '\t') v++;
        size_t vl = strlen(v);
        if (vl >= 2 && v[0] == '"' && v[vl - 1] == '"') {
            v[vl - 1] = '\0';
            v++;
        }
        x.key = k;
        e = cur ? kagi__link_key(&x, cur, k, v) : kagi__top_key(&x, c, k, v);
    }
    if (!e) e = kagi__finish(c, name);
    if (e) {
        kagi_kme_config_free(c);
        return e;
    }
    *out = c;
    return KAGI_OK;
}

int kagi_kme_config_load(const char *path, kagi_kme_config **out)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    KAGI__FAIL_IF(!f, KAGI_ERR_IO, "config %s: %s", path, strerror(errno));
    char *buf = malloc(1 << 20);
    size_t n = buf ? fread(buf, 1, 1 << 20, f) : 0;
    int big = buf && n == 1 << 20;
    fclose(f);
    if (!buf) return kagi__err(KAGI_ERR_NOMEM, "out of memory");
    if (big) {
        free(buf);
        return kagi__err(KAGI_ERR_FORMAT, "config %s is larger than 1 MiB", path);
    }
    int e = kagi_kme_config_parse(buf, n, path, out);
    free(buf);
    return e;
}

void kagi_kme_config_free(kagi_kme_config *c)
{
    if (!c) return;
    free(c->saes);
    free(c->links);
    free(c->routes);
    free(c);
}

const kagi_kme_sae_cfg *kagi_kme_config_sae(const kagi_kme_config *c, const char *id, size_t len)
{
    for (size_t i = 0; i < c->n_saes; i++)
        if (strlen(c->saes[i].id) == len && !memcmp(c->saes[i].id, id, len)) return &c->saes[i];
    return NULL;
}
