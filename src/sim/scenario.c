/* Scenario descriptions: defaults, building in code, whole-scenario checks,
 * durations and great-circle distances. The YAML loader is scenario_yaml.c. */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "kagi/scenario.h"
#include "sim_internal.h"

int kagi_scenario_new(kagi_scenario **out)
{
    kagi_scenario *sc = calloc(1, sizeof *sc);
    if (!sc) return kagi__err(KAGI_ERR_NOMEM, "scenario: out of memory");
    sc->duration_s = 86400;
    sc->seed = 1;
    sc->mac_bits = 256;
    sc->route_reserve = 100;
    sc->start_utc = NAN;
    *out = sc;
    return KAGI_OK;
}

void kagi_scenario_free(kagi_scenario *sc)
{
    if (!sc) return;
    for (size_t i = 0; i < sc->nlinks; i++) free(sc->links[i].windows);
    for (size_t i = 0; i < sc->ndemands; i++) free(sc->demands[i].schedule);
    free(sc->nodes);
    free(sc->links);
    free(sc->demands);
    free(sc->events);
    free(sc->stations);
    free(sc->satellites);
    free(sc->saes);
    free(sc);
}

void kagi_sc_link_defaults(kagi_sc_link *l)
{
    memset(l, 0, sizeof *l);
    l->kind = KAGI_SC_LINK_MODEL;
    l->length_km = -1;
    l->route_factor = 1;
    l->protocol = KAGI_PROTO_BB84_DECOY;
    l->decoys = KAGI_DECOYS_TWO;
    l->n_block = 1e7;
    kagi_link_defaults(&l->model);
}

void kagi_sc_demand_defaults(kagi_sc_demand *d)
{
    memset(d, 0, sizeof *d);
    d->key_bits = 256;
    d->policy = KAGI_SC_WAIT;
    d->timeout_s = 60;
    d->max_queue = 10000;
    d->split = 1;
    d->start_s = 0;
    d->stop_s = INFINITY;
}

void kagi_sc_station_defaults(kagi_sc_station *g)
{
    memset(g, 0, sizeof *g);
    g->min_el_deg = 10;
    snprintf(g->preset, sizeof g->preset, "micius");
    if (kagi_fso_preset("micius", &g->link) != KAGI_OK) memset(&g->link, 0, sizeof g->link);
}

void kagi_sc_satellite_defaults(kagi_sc_satellite *s)
{
    memset(s, 0, sizeof *s);
    s->passes_per_block = 1;
    s->step_s = 10;
    snprintf(s->preset, sizeof s->preset, "micius");
    if (kagi_fso_preset("micius", &s->link) != KAGI_OK) memset(&s->link, 0, sizeof s->link);
}

void kagi_sc_pair_link(const kagi_scenario *sc, size_t sat, size_t gs, kagi_fso_link *out)
{
    const kagi_fso_link *p = &sc->satellites[sat].link;
    *out = sc->stations[gs].link;
    out->fso.direction = p->fso.direction;
    out->fso.wavelength_m = p->fso.wavelength_m;
    out->fso.tx_aperture_m = p->fso.tx_aperture_m;
    out->fso.divergence_rad = p->fso.divergence_rad;
    out->fso.pointing_jitter_rad = p->fso.pointing_jitter_rad;
    memcpy(out->qkd.mu, p->qkd.mu, sizeof out->qkd.mu);
    memcpy(out->qkd.p_mu, p->qkd.p_mu, sizeof out->qkd.p_mu);
    out->qkd.p_x = p->qkd.p_x;
    out->qkd.send_prob = p->qkd.send_prob;
    out->qkd.clock_hz = p->qkd.clock_hz;
    out->qkd.f_ec = p->qkd.f_ec;
    out->qkd.eps_sec = p->qkd.eps_sec;
    out->qkd.eps_cor = p->qkd.eps_cor;
}

/* Append the elem-sized item to the array *p of *n items (room for *cap),
 * growing it as needed; its index into *index if asked. On failure, owned
 * (the item's heap part, which the array would have taken over) is freed. */
static int kagi__append(void **p, size_t *n, size_t *cap, const void *item, size_t elem,
                        void *owned, size_t *index)
{
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 16;
        void *q = realloc(*p, nc * elem);
        if (!q) {
            free(owned);
            return kagi__err(KAGI_ERR_NOMEM, "scenario: out of memory");
        }
        *p = q;
        *cap = nc;
    }
    memcpy((char *)*p + *n * elem, item, elem);
    if (index) *index = *n;
    (*n)++;
    return KAGI_OK;
}

int kagi_scenario_add_node(kagi_scenario *sc, const kagi_sc_node *n, size_t *index)
{
    return kagi__append((void **)&sc->nodes, &sc->nnodes, &sc->cap_[0], n, sizeof *n, NULL,
                        index);
}

int kagi_scenario_add_link(kagi_scenario *sc, const kagi_sc_link *l, size_t *index)
{
    return kagi__append((void **)&sc->links, &sc->nlinks, &sc->cap_[1], l, sizeof *l,
                        l->windows, index);
}

int kagi_scenario_add_demand(kagi_scenario *sc, const kagi_sc_demand *d, size_t *index)
{
    return kagi__append((void **)&sc->demands, &sc->ndemands, &sc->cap_[2], d, sizeof *d,
                        d->schedule, index);
}

int kagi_scenario_add_event(kagi_scenario *sc, const kagi_sc_event *e)
{
    return kagi__append((void **)&sc->events, &sc->nevents, &sc->cap_[3], e, sizeof *e, NULL,
                        NULL);
}

int kagi_scenario_add_station(kagi_scenario *sc, const kagi_sc_station *g, size_t *index)
{
    return kagi__append((void **)&sc->stations, &sc->nstations, &sc->cap_[4], g, sizeof *g,
                        NULL, index);
}

int kagi_scenario_add_satellite(kagi_scenario *sc, const kagi_sc_satellite *s, size_t *index)
{
    return kagi__append((void **)&sc->satellites, &sc->nsatellites, &sc->cap_[5], s,
                        sizeof *s, NULL, index);
}

int kagi_scenario_add_sae(kagi_scenario *sc, const kagi_sc_sae *a, size_t *index)
{
    return kagi__append((void **)&sc->saes, &sc->nsaes, &sc->cap_[6], a, sizeof *a, NULL, index);
}

long kagi_scenario_sae(const kagi_scenario *sc, const char *id)
{
    for (size_t i = 0; i < sc->nsaes; i++)
        if (!strcmp(sc->saes[i].id, id)) return (long)i;
    return -1;
}

int kagi_sc_valid_id(const char *s)
{
    size_t n = strlen(s);
    if (n < 1 || n > KAGI_SC_SAE_ID_MAX) return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '~' || c == '-'))
            return 0;
    }
    return 1;
}

int kagi_scenario_link_satellites(kagi_scenario *sc)
{
    if (!sc->nsatellites || !sc->nstations) return KAGI_OK;
    size_t np = sc->nsatellites * sc->nstations;
    uint8_t *have = calloc(np, 1);
    if (!have) return kagi__err(KAGI_ERR_NOMEM, "scenario: out of memory");
    for (size_t i = 0; i < sc->nlinks; i++) {
        const kagi_sc_link *l = &sc->links[i];
        if (l->sat && l->gs && l->sat <= sc->nsatellites && l->gs <= sc->nstations)
            have[(l->sat - 1) * sc->nstations + (l->gs - 1)] = 1;
    }
    int rc = KAGI_OK;
    for (size_t k = 0; k < sc->nsatellites && !rc; k++)
        for (size_t g = 0; g < sc->nstations && !rc; g++) {
            if (have[k * sc->nstations + g]) continue;
            const kagi_sc_satellite *sa = &sc->satellites[k];
            const kagi_sc_station *st = &sc->stations[g];
            if (sa->node >= sc->nnodes || st->node >= sc->nnodes) {
                rc = kagi__err(KAGI_ERR_ARG, "satellites[%zu] or stations[%zu]: node index out "
                               "of range", k, g);
                break;
            }
            kagi_sc_link l;
            kagi_sc_link_defaults(&l);
            l.kind = KAGI_SC_LINK_SCHEDULED;
            l.a = sa->node;
            l.b = st->node;
            l.sat = k + 1;
            l.gs = g + 1;
            l.line = sa->line;
            const char *an = sc->nodes[l.a].name, *bn = sc->nodes[l.b].name;
            size_t la = strlen(an), lb = strlen(bn);
            if (la + lb + 1 < KAGI_SC_NAME_MAX) {
                memcpy(l.name, an, la);
                l.name[la] = '-';
                memcpy(l.name + la + 1, bn, lb + 1);
            } else /* too long for "SAT-STATION": the indices keep it unique */
                snprintf(l.name, sizeof l.name, "sat%zu-gs%zu", k, g);
            rc = kagi_scenario_add_link(sc, &l, NULL);
        }
    free(have);
    return rc;
}

long kagi_scenario_node(const kagi_scenario *sc, const char *name)
{
    for (size_t i = 0; i < sc->nnodes; i++)
        if (!strcmp(sc->nodes[i].name, name)) return (long)i;
    return -1;
}

long kagi_scenario_link(const kagi_scenario *sc, const char *name)
{
    for (size_t i = 0; i < sc->nlinks; i++)
        if (!strcmp(sc->links[i].name, name)) return (long)i;
    return -1;
}

const char *kagi__name_problem(const char *s)
{
    size_t n = strlen(s);
    if (n == 0) return "is empty";
    if (n >= KAGI_SC_NAME_MAX) return "is longer than 63 bytes";
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f) return "holds a control character";
        if (strchr("\",\\", c)) return "holds one of \" , \\";
    }
    /* UTF-8 well-formedness (no overlongs or surrogates needed here: only
     * the structure, so that reports stay valid text). */
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        size_t k = c < 0x80 ? 0 : (c & 0xe0) == 0xc0 ? 1 : (c & 0xf0) == 0xe0 ? 2
                 : (c & 0xf8) == 0xf0 ? 3 : 9;
        if (k == 9 || i + k >= n + (k ? 0 : 1)) return "is not valid UTF-8";
        for (size_t j = 1; j <= k; j++)
            if (((unsigned char)s[i + j] & 0xc0) != 0x80) return "is not valid UTF-8";
        i += k + 1;
    }
    return NULL;
}

/* "FILE:LINE: " when the scenario came from a file, else "". */
static void kagi__at(const kagi_scenario *sc, size_t line, char *buf, size_t len)
{
    if (sc->origin[0] && line)
        snprintf(buf, len, "%s:%zu: ", sc->origin, line);
    else if (sc->origin[0])
        snprintf(buf, len, "%s: ", sc->origin);
    else
        buf[0] = 0;
}

#define KAGI__BAD(line, ...)                                                                 \
    do {                                                                                     \
        char at_[320], msg_[1100];                                                            \
        kagi__at(sc, (line), at_, sizeof at_);                                               \
        snprintf(msg_, sizeof msg_, __VA_ARGS__);                                            \
        return kagi__err(KAGI_ERR_ARG, "%s%s", at_, msg_);                                   \
    } while (0)

typedef struct kagi__evsort {
    kagi_sc_event e;
    size_t pos;
} kagi__evsort;

static int kagi__cmp_event(const void *a, const void *b)
{
    const kagi__evsort *x = a, *y = b;
    if (x->e.at_s != y->e.at_s) return x->e.at_s < y->e.at_s ? -1 : 1;
    return x->pos < y->pos ? -1 : x->pos > y->pos;
}

typedef struct kagi__named {
    const char *name;
    size_t pos;
} kagi__named;

static int kagi__cmp_named(const void *a, const void *b)
{
    const kagi__named *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : (x->pos < y->pos ? -1 : x->pos > y->pos);
}

/* Names unique among n items of size elem whose first member is the name
 * and which hold their source line at line_off: sorted, O(n log n). */
static int kagi__unique_names(const kagi_scenario *sc, const char *what, size_t n,
                              const void *items, size_t elem, size_t line_off)
{
    if (n < 2) return KAGI_OK;
    kagi__named *t = malloc(n * sizeof *t);
    if (!t) return kagi__err(KAGI_ERR_NOMEM, "scenario: out of memory");
    for (size_t i = 0; i < n; i++) {
        t[i].name = (const char *)items + i * elem;
        t[i].pos = i;
    }
    qsort(t, n, sizeof *t, kagi__cmp_named);
    for (size_t i = 1; i < n; i++)
        if (!strcmp(t[i - 1].name, t[i].name)) {
            size_t first = t[i - 1].pos, later = t[i].pos, line;
            memcpy(&line, (const char *)items + later * elem + line_off, sizeof line);
            char name[KAGI_SC_NAME_MAX];
            snprintf(name, sizeof name, "%s", t[i].name);
            free(t);
            KAGI__BAD(line, "%s[%zu]: name '%s' is already used by %s[%zu]%s", what, later, name,
                      what, first,
                      what[0] == 'l' ? " (give parallel links their own name:)" : "");
        }
    free(t);
    return KAGI_OK;
}

static int kagi__check_model(const kagi_scenario *sc, size_t i, const kagi_sc_link *l)
{
    int tf = l->protocol == KAGI_PROTO_TF_QKD;
    if (!(l->n_block >= 0) || !isfinite(l->n_block) || (l->n_block > 0 && l->n_block < 100))
        KAGI__BAD(l->line, "links[%zu] (%s): block: %g is not 0 (asymptotic) or at least 100",
                  i, l->name, l->n_block);
    if (tf && l->n_block > 0)
        KAGI__BAD(l->line, "links[%zu] (%s): block: tf-qkd is modelled asymptotically only "
                  "(set block: 0)", i, l->name);
    if (tf && l->decoys == KAGI_DECOYS_TWO)
        KAGI__BAD(l->line, "links[%zu] (%s): decoys: tf-qkd is modelled with infinite decoys "
                  "only", i, l->name);
    if (l->n_block > 0 && l->decoys != KAGI_DECOYS_TWO)
        KAGI__BAD(l->line, "links[%zu] (%s): decoys: a finite block needs decoys: 2", i, l->name);
    if (l->n_block > 0 && !(l->model.p_x < 1))
        KAGI__BAD(l->line, "links[%zu] (%s): p_x: a finite block needs p_x < 1", i, l->name);
    if (kagi_link_check(&l->model, tf ? KAGI_DECOYS_INFINITE : l->decoys) != KAGI_OK) {
        char d[512];
        snprintf(d, sizeof d, "%s", kagi_errdetail());
        KAGI__BAD(l->line, "links[%zu] (%s): %s", i, l->name, d);
    }
    return KAGI_OK;
}

static int kagi__check_links(const kagi_scenario *sc)
{
    for (size_t i = 0; i < sc->nlinks; i++) {
        const kagi_sc_link *l = &sc->links[i];
        const char *p = kagi__name_problem(l->name);
        if (p) KAGI__BAD(l->line, "links[%zu]: name '%s' %s", i, l->name, p);
        if (l->a >= sc->nnodes || l->b >= sc->nnodes)
            KAGI__BAD(l->line, "links[%zu] (%s): end node index out of range", i, l->name);
        if (l->a == l->b)
            KAGI__BAD(l->line, "links[%zu] (%s): both ends are %s", i, l->name,
                      sc->nodes[l->a].name);
        if (!(l->route_factor >= 1 && l->route_factor <= 10))
            KAGI__BAD(l->line, "links[%zu] (%s): route_factor: %g is outside [1, 10]", i,
                      l->name, l->route_factor);
        if (isnan(l->length_km) || l->length_km > 40000 || isinf(l->length_km))
            KAGI__BAD(l->line, "links[%zu] (%s): length_km: %g is not a length in [0, 40000]", i,
                      l->name, l->length_km);
        if (l->kind == KAGI_SC_LINK_MODEL) {
            KAGI__TRY(kagi__check_model(sc, i, l));
        } else if (l->kind == KAGI_SC_LINK_FIXED) {
            if (!(l->key_rate_bps > 0 && l->key_rate_bps <= 1e12))
                KAGI__BAD(l->line, "links[%zu] (%s): key_rate: %g bit/s is outside (0, 1e12]", i,
                          l->name, l->key_rate_bps);
        } else if (l->kind == KAGI_SC_LINK_SCHEDULED) {
            for (size_t w = 0; w < l->nwindows; w++) {
                const kagi_sc_window *x = &l->windows[w];
                if (!(x->t0_s >= 0 && x->t1_s > x->t0_s && isfinite(x->t1_s)))
                    KAGI__BAD(l->line, "links[%zu] (%s): windows[%zu]: from %g s to %g s is not "
                              "an interval after 0", i, l->name, w, x->t0_s, x->t1_s);
                if (w && x->t0_s < l->windows[w - 1].t1_s)
                    KAGI__BAD(l->line, "links[%zu] (%s): windows[%zu] starts before windows[%zu] "
                              "ends (sort them, without overlap)", i, l->name, w, w - 1);
            }
        } else {
            KAGI__BAD(l->line, "links[%zu] (%s): unknown kind", i, l->name);
        }
    }
    /* Explicit pool capacities must fit in both ends' key stores (each
     * value is at most 2^60, so a running sum checked at every step cannot
     * wrap). */
    uint64_t *sum = calloc(sc->nnodes + 1, sizeof *sum);
    if (!sum) return kagi__err(KAGI_ERR_NOMEM, "scenario: out of memory");
    for (size_t i = 0; i < sc->nlinks; i++) {
        const kagi_sc_link *l = &sc->links[i];
        if (l->pool_bits > ((uint64_t)1 << 60)) {
            free(sum);
            KAGI__BAD(l->line, "links[%zu] (%s): pool_bits: above 2^60", i, l->name);
        }
        size_t ends[2] = {l->a, l->b};
        for (int k = 0; k < 2; k++) {
            size_t n = ends[k];
            sum[n] += l->pool_bits;
            if (sum[n] > sc->nodes[n].capacity_bits) {
                unsigned long long got = sum[n];
                free(sum);
                KAGI__BAD(l->line, "links[%zu] (%s): pool_bits: the pool_bits of %s's links add "
                          "up to %llu bits, more than its capacity %llu", i, l->name,
                          sc->nodes[n].name, got, (unsigned long long)sc->nodes[n].capacity_bits);
            }
        }
    }
    free(sum);
    return KAGI_OK;
}

/* SAEs: valid ids, unique, on existing nodes (a testbed's KMEs need
 * nothing more of them). */
static int kagi__check_saes(const kagi_scenario *sc)
{
    for (size_t i = 0; i < sc->nsaes; i++) {
        const kagi_sc_sae *a = &sc->saes[i];
        if (!kagi_sc_valid_id(a->id))
            KAGI__BAD(a->line, "saes[%zu]: id '%s' is not 1 to %d of A-Z a-z 0-9 . _ ~ -", i,
                      a->id, KAGI_SC_SAE_ID_MAX);
        if (a->node >= sc->nnodes) KAGI__BAD(a->line, "saes[%zu] (%s): node index out of range", i, a->id);
    }
    return kagi__unique_names(sc, "saes", sc->nsaes, sc->saes, sizeof *sc->saes,
                              offsetof(kagi_sc_sae, line));
}

static int kagi__check_demands(const kagi_scenario *sc)
{
    for (size_t i = 0; i < sc->ndemands; i++) {
        const kagi_sc_demand *d = &sc->demands[i];
        const char *p = kagi__name_problem(d->name);
        if (p) KAGI__BAD(d->line, "demands[%zu]: name '%s' %s", i, d->name, p);
        if (d->src >= sc->nnodes || d->dst >= sc->nnodes)
            KAGI__BAD(d->line, "demands[%zu] (%s): node index out of range", i, d->name);
        if (d->src == d->dst)
            KAGI__BAD(d->line, "demands[%zu] (%s): from and to are both %s", i, d->name,
                      sc->nodes[d->src].name);
        if ((d->rate_bps > 0) == (d->nschedule > 0))
            KAGI__BAD(d->line, "demands[%zu] (%s): give either rate or schedule", i, d->name);
        if (d->nschedule == 0 && !(d->rate_bps > 0 && d->rate_bps <= 1e12))
            KAGI__BAD(d->line, "demands[%zu] (%s): rate: %g bit/s is outside (0, 1e12]", i,
                      d->name, d->rate_bps);
        if (d->key_bits < 1 || d->key_bits > ((uint64_t)1 << 40))
            KAGI__BAD(d->line, "demands[%zu] (%s): key_size: %llu bits is outside [1, 2^40]", i,
                      d->name, (unsigned long long)d->key_bits);
        if (!(d->timeout_s > 0))
            KAGI__BAD(d->line, "demands[%zu] (%s): timeout: must be positive", i, d->name);
        if (d->split < 1 || d->split > 8)
            KAGI__BAD(d->line, "demands[%zu] (%s): split: %u is outside 1..8", i, d->name,
                      d->split);
        if (!(d->start_s >= 0 && isfinite(d->start_s)) || !(d->stop_s > d->start_s))
            KAGI__BAD(d->line, "demands[%zu] (%s): start %g s and stop %g s are not an interval "
                      "after 0", i, d->name, d->start_s, d->stop_s);
        if (d->max_queue > 100000000)
            KAGI__BAD(d->line, "demands[%zu] (%s): queue: %llu is above 1e8", i, d->name,
                      (unsigned long long)d->max_queue);
        const size_t ends[2] = {d->master, d->slave}, at[2] = {d->src, d->dst};
        for (int e = 0; e < 2; e++) {
            if (!ends[e]) continue;
            if (ends[e] > sc->nsaes)
                KAGI__BAD(d->line, "demands[%zu] (%s): %s: SAE index out of range", i, d->name,
                          e ? "slave" : "master");
            const kagi_sc_sae *a = &sc->saes[ends[e] - 1];
            if (a->node != at[e])
                KAGI__BAD(d->line, "demands[%zu] (%s): %s: SAE %s is at node %s, not at %s (the "
                          "demand's %s)", i, d->name, e ? "slave" : "master", a->id,
                          sc->nodes[a->node].name, sc->nodes[at[e]].name, e ? "to" : "from");
        }
        for (size_t k = 0; k < d->nschedule; k++) {
            const kagi_sc_request *r = &d->schedule[k];
            if (!(r->at_s >= 0 && isfinite(r->at_s)) || r->bits < 1 || r->bits > ((uint64_t)1 << 40)
                || r->count < 1 || r->count > 100000000 ||
                (r->count > 1 && !(r->every_s > 0 && isfinite(r->every_s))))
                KAGI__BAD(d->line, "demands[%zu] (%s): schedule[%zu]: needs at >= 0, bits in "
                          "[1, 2^40], count in [1, 1e8] and every > 0 when count > 1", i,
                          d->name, k);
        }
    }
    return KAGI_OK;
}

/* Ground stations, satellites and their links. role[n]: 0 a plain node,
 * 1 + g for ground station g, a negative -(1 + k) for satellite k. */
static int kagi__check_space(const kagi_scenario *sc)
{
    if (!sc->nsatellites && !sc->nstations) {
        for (size_t i = 0; i < sc->nlinks; i++)
            if (sc->links[i].sat || sc->links[i].gs)
                KAGI__BAD(sc->links[i].line, "links[%zu] (%s): a satellite link without "
                          "satellites or ground stations", i, sc->links[i].name);
        return KAGI_OK;
    }
    if (sc->nsatellites > 10000 || sc->nstations > 100000)
        KAGI__BAD(0, "scenario too large (at most 10^4 satellites and 10^5 ground stations)");
    if (sc->nsatellites && !isfinite(sc->start_utc))
        KAGI__BAD(0, "start: a scenario with satellites needs the UTC time it starts at");
    if (isfinite(sc->start_utc) && !(sc->start_utc > -2208988800.0 && sc->start_utc < 4102444800.0))
        KAGI__BAD(0, "start: %g s is outside the years 1900-2100", sc->start_utc);
    long *role = calloc(sc->nnodes + 1, sizeof *role);
    if (!role) return kagi__err(KAGI_ERR_NOMEM, "scenario: out of memory");
    int rc = KAGI_OK;
    char at[320], msg[900];
    size_t line = 0;
#define KAGI__SBAD(ln, ...)                                                                  \
    do {                                                                                     \
        line = (ln);                                                                         \
        snprintf(msg, sizeof msg, __VA_ARGS__);                                              \
        rc = KAGI_ERR_ARG;                                                                   \
        goto done;                                                                           \
    } while (0)
    for (size_t g = 0; g < sc->nstations; g++) {
        const kagi_sc_station *st = &sc->stations[g];
        if (st->node >= sc->nnodes) KAGI__SBAD(st->line, "ground_stations[%zu]: node index out of range", g);
        const char *nm = sc->nodes[st->node].name;
        if (role[st->node])
            KAGI__SBAD(st->line, "ground_stations[%zu] (%s): node %s already has a ground station",
                       g, nm, nm);
        role[st->node] = (long)g + 1;
        if (!(st->alt_m >= -500 && st->alt_m <= 9000))
            KAGI__SBAD(st->line, "ground_stations[%zu] (%s): alt_m: %g m is outside [-500, 9000]",
                       g, nm, st->alt_m);
        if (!(st->min_el_deg >= 0 && st->min_el_deg <= 89))
            KAGI__SBAD(st->line, "ground_stations[%zu] (%s): min_elevation: %g deg is outside "
                       "[0, 89]", g, nm, st->min_el_deg);
        if (kagi_fso_check(&st->link) != KAGI_OK)
            KAGI__SBAD(st->line, "ground_stations[%zu] (%s): %s", g, nm, kagi_errdetail());
    }
    for (size_t k = 0; k < sc->nsatellites; k++) {
        const kagi_sc_satellite *sa = &sc->satellites[k];
        if (sa->node >= sc->nnodes) KAGI__SBAD(sa->line, "satellites[%zu]: node index out of range", k);
        const char *nm = sc->nodes[sa->node].name;
        if (role[sa->node])
            KAGI__SBAD(sa->line, "satellites[%zu] (%s): node %s is already a %s", k, nm, nm,
                       role[sa->node] > 0 ? "ground station" : "satellite");
        role[sa->node] = -(long)k - 1;
        if (sa->passes_per_block < 1 || sa->passes_per_block > 1000)
            KAGI__SBAD(sa->line, "satellites[%zu] (%s): passes_per_block: %u is outside 1..1000",
                       k, nm, sa->passes_per_block);
        if (!(sa->step_s >= 0.01 && sa->step_s <= 600))
            KAGI__SBAD(sa->line, "satellites[%zu] (%s): pass_step: %g s is outside [0.01 s, 10m]",
                       k, nm, sa->step_s);
        if (kagi_fso_check(&sa->link) != KAGI_OK)
            KAGI__SBAD(sa->line, "satellites[%zu] (%s): %s", k, nm, kagi_errdetail());
        kagi_sat *o = NULL;
        if (kagi_sat_new(&sa->tle, &o) != KAGI_OK)
            KAGI__SBAD(sa->line, "satellites[%zu] (%s): tle: %s", k, nm, kagi_errdetail());
        kagi_sat_free(o);
    }
    for (size_t i = 0; i < sc->nlinks; i++) {
        const kagi_sc_link *l = &sc->links[i];
        if (!l->sat && !l->gs) {
            if (role[l->a] < 0 || role[l->b] < 0)
                KAGI__SBAD(l->line, "links[%zu] (%s): %s is a satellite: only its satellite links "
                           "may join it", i, l->name,
                           sc->nodes[role[l->a] < 0 ? l->a : l->b].name);
            continue;
        }
        if (!l->sat || !l->gs || l->sat > sc->nsatellites || l->gs > sc->nstations)
            KAGI__SBAD(l->line, "links[%zu] (%s): satellite or ground station index out of range",
                       i, l->name);
        size_t sn = sc->satellites[l->sat - 1].node, gn = sc->stations[l->gs - 1].node;
        if (l->kind != KAGI_SC_LINK_SCHEDULED ||
            !((l->a == sn && l->b == gn) || (l->a == gn && l->b == sn)))
            KAGI__SBAD(l->line, "links[%zu] (%s): a satellite link must be scheduled and join its "
                       "satellite's node to its ground station's", i, l->name);
        kagi_fso_link pl;
        kagi_sc_pair_link(sc, l->sat - 1, l->gs - 1, &pl);
        if (kagi_fso_check(&pl) != KAGI_OK)
            KAGI__SBAD(l->line, "links[%zu] (%s): satellite %s over %s: %s", i, l->name,
                       sc->nodes[sn].name, sc->nodes[gn].name, kagi_errdetail());
    }
    /* one link per (satellite, station) pair */
    if (sc->nsatellites && sc->nstations &&
        sc->nsatellites <= 100000000 / (sc->nstations ? sc->nstations : 1)) {
        uint8_t *have = calloc(sc->nsatellites * sc->nstations, 1);
        if (!have) {
            free(role);
            return kagi__err(KAGI_ERR_NOMEM, "scenario: out of memory");
        }
        for (size_t i = 0; i < sc->nlinks && !rc; i++) {
            const kagi_sc_link *l = &sc->links[i];
            if (!l->sat) continue;
            uint8_t *h = &have[(l->sat - 1) * sc->nstations + (l->gs - 1)];
            if (*h) {
                line = l->line;
                snprintf(msg, sizeof msg, "links[%zu] (%s): a second link of satellite %s over "
                         "%s", i, l->name, sc->nodes[sc->satellites[l->sat - 1].node].name,
                         sc->nodes[sc->stations[l->gs - 1].node].name);
                rc = KAGI_ERR_ARG;
            }
            *h = 1;
        }
        free(have);
    }
#undef KAGI__SBAD
done:
    free(role);
    if (rc) {
        char d[sizeof msg];
        memcpy(d, msg, sizeof d);
        kagi__at(sc, line, at, sizeof at);
        return kagi__err(rc, "%s%s", at, d);
    }
    return KAGI_OK;
}

int kagi__scenario_validate(const kagi_scenario *sc, int need_sorted)
{
    if (!(sc->duration_s > 0 && sc->duration_s <= 20 * 365.25 * 86400))
        KAGI__BAD(0, "duration: %g s is outside (0 s, 20 years]", sc->duration_s);
    if (!(sc->sample_s >= 0 && isfinite(sc->sample_s)))
        KAGI__BAD(0, "sample: %g s is not a duration", sc->sample_s);
    if (sc->mac_bits > 1000000)
        KAGI__BAD(0, "mac_bits: %llu is above 10^6", (unsigned long long)sc->mac_bits);
    if (!(sc->route_reserve >= 0 && sc->route_reserve <= 1e9))
        KAGI__BAD(0, "route_reserve: %g is outside [0, 1e9]", sc->route_reserve);
    if (sc->nnodes < 2) KAGI__BAD(0, "nodes: a network needs at least two nodes");
    if (sc->nnodes > 1000000 || sc->nlinks > 10000000 || sc->ndemands > 10000000)
        KAGI__BAD(0, "scenario too large (at most 10^6 nodes, 10^7 links and demands)");
    for (size_t i = 0; i < sc->nnodes; i++) {
        const kagi_sc_node *n = &sc->nodes[i];
        const char *p = kagi__name_problem(n->name);
        if (p) KAGI__BAD(n->line, "nodes[%zu]: name '%s' %s", i, n->name, p);
        if (!(n->lat_deg >= -90 && n->lat_deg <= 90))
            KAGI__BAD(n->line, "nodes[%zu] (%s): lat: %g is outside [-90, 90]", i, n->name,
                      n->lat_deg);
        if (!(n->lon_deg >= -180 && n->lon_deg <= 180))
            KAGI__BAD(n->line, "nodes[%zu] (%s): lon: %g is outside [-180, 180]", i, n->name,
                      n->lon_deg);
        if (n->capacity_bits < 1 || n->capacity_bits > ((uint64_t)1 << 60))
            KAGI__BAD(n->line, "nodes[%zu] (%s): capacity: %llu bits is outside [1, 2^60]", i,
                      n->name, (unsigned long long)n->capacity_bits);
    }
    KAGI__TRY(kagi__unique_names(sc, "nodes", sc->nnodes, sc->nodes, sizeof *sc->nodes,
                                 offsetof(kagi_sc_node, line)));
    KAGI__TRY(kagi__check_links(sc));
    KAGI__TRY(kagi__unique_names(sc, "links", sc->nlinks, sc->links, sizeof *sc->links,
                                 offsetof(kagi_sc_link, line)));
    KAGI__TRY(kagi__check_space(sc));
    KAGI__TRY(kagi__check_saes(sc));
    KAGI__TRY(kagi__check_demands(sc));
    for (size_t i = 0; i < sc->nevents; i++) {
        const kagi_sc_event *e = &sc->events[i];
        if (!(e->at_s >= 0 && isfinite(e->at_s)))
            KAGI__BAD(e->line, "events[%zu]: at: %g s is not a time after 0", i, e->at_s);
        size_t lim = e->kind == KAGI_SC_NODE_DOWN || e->kind == KAGI_SC_NODE_UP ? sc->nnodes
                                                                                : sc->nlinks;
        if (e->target >= lim) KAGI__BAD(e->line, "events[%zu]: target index out of range", i);
        if (e->kind == KAGI_SC_EAVESDROP && !(e->qber > 0 && e->qber <= 0.5))
            KAGI__BAD(e->line, "events[%zu]: qber: %g is outside (0, 0.5]", i, e->qber);
        if ((unsigned)e->kind > KAGI_SC_EAVESDROP)
            KAGI__BAD(e->line, "events[%zu]: unknown kind", i);
        if (need_sorted && i && e->at_s < sc->events[i - 1].at_s)
            KAGI__BAD(e->line, "events[%zu]: not in time order (kagi_scenario_check sorts them)",
                      i);
    }
    return KAGI_OK;
}

int kagi_scenario_check(kagi_scenario *sc)
{
    KAGI__TRY(kagi__scenario_validate(sc, 0));
    /* Stable sort by time: qsort is not stable, so ties go by position. */
    if (sc->nevents > 1) {
        kagi__evsort *t = malloc(sc->nevents * sizeof *t);
        if (!t) return kagi__err(KAGI_ERR_NOMEM, "scenario: out of memory");
        for (size_t i = 0; i < sc->nevents; i++) {
            t[i].e = sc->events[i];
            t[i].pos = i;
        }
        qsort(t, sc->nevents, sizeof *t, kagi__cmp_event);
        for (size_t i = 0; i < sc->nevents; i++) sc->events[i] = t[i].e;
        free(t);
    }
    return KAGI_OK;
}

int kagi_duration_parse(const char *s, double *seconds)
{
    static const struct {
        const char *unit;
        double sec;
    } units[] = {{"ms", 1e-3}, {"s", 1}, {"m", 60}, {"h", 3600}, {"d", 86400}, {"w", 604800}};
    const char *p = s;
    double total = 0;
    int parts = 0;
    while (*p == ' ') p++;
    while (*p) {
        char *end;
        if (!((*p >= '0' && *p <= '9') || *p == '.'))
            return kagi__err(KAGI_ERR_ARG, "'%s' is not a duration (like 90, 90s, 2h, 1d12h)", s);
        double v = strtod(p, &end);
        if (end == p || !isfinite(v) || v < 0)
            return kagi__err(KAGI_ERR_ARG, "'%s' is not a duration (like 90, 90s, 2h, 1d12h)", s);
        p = end;
        size_t ul = 0;
        while (p[ul] >= 'a' && p[ul] <= 'z') ul++;
        if (ul == 0) {
            /* a bare number is seconds, and only on its own */
            while (*p == ' ') p++;
            if (*p || parts)
                return kagi__err(KAGI_ERR_ARG, "'%s': a number needs a unit (ms, s, m, h, d, w) "
                                 "unless it stands alone (seconds)", s);
            total += v;
            parts++;
            break;
        }
        size_t u = 0;
        for (; u < sizeof units / sizeof *units; u++)
            if (strlen(units[u].unit) == ul && !memcmp(units[u].unit, p, ul)) break;
        if (u == sizeof units / sizeof *units)
            return kagi__err(KAGI_ERR_ARG, "'%s': unknown unit '%.*s' (ms, s, m, h, d or w)", s,
                             (int)ul, p);
        total += v * units[u].sec;
        parts++;
        p += ul;
        while (*p == ' ') p++;
    }
    if (!parts || !isfinite(total))
        return kagi__err(KAGI_ERR_ARG, "'%s' is not a duration (like 90, 90s, 2h, 1d12h)", s);
    *seconds = total;
    return KAGI_OK;
}

void kagi_duration_format(double t, char *buf, size_t len)
{
    if (!isfinite(t)) {
        snprintf(buf, len, "%s", t > 0 ? "never" : "?");
        return;
    }
    if (t < 1 && t > 0) {
        snprintf(buf, len, "%gms", t * 1e3);
        return;
    }
    double whole = floor(t);
    if (whole != t || t >= 1e12) {
        snprintf(buf, len, "%gs", t);
        return;
    }
    uint64_t v = (uint64_t)whole;
    static const struct {
        char u;
        uint64_t sec;
    } parts[] = {{'d', 86400}, {'h', 3600}, {'m', 60}, {'s', 1}};
    size_t off = 0;
    buf[0] = 0;
    for (size_t i = 0; i < 4 && off + 24 < len; i++) {
        uint64_t k = v / parts[i].sec;
        v %= parts[i].sec;
        if (k) off += (size_t)snprintf(buf + off, len - off, "%llu%c", (unsigned long long)k, parts[i].u);
    }
    if (!off) snprintf(buf, len, "0s");
}

double kagi_great_circle_km(double lat1, double lon1, double lat2, double lon2)
{
    const double r = 6371.0088, k = 3.14159265358979323846 / 180;
    double dphi = (lat2 - lat1) * k, dl = (lon2 - lon1) * k;
    double a = sin(dphi / 2) * sin(dphi / 2) +
               cos(lat1 * k) * cos(lat2 * k) * sin(dl / 2) * sin(dl / 2);
    if (a > 1) a = 1;
    return 2 * r * asin(sqrt(a));
}
