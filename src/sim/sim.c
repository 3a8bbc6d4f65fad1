/* The discrete-event core of the network simulator: event queue, lazy key
 * pools, demands with their FIFO of waiting requests, scenario events,
 * samples and the invariants. Routing is in route.c, outputs in output.c. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "kagi/keyrate.h"
#include "kagi/sim.h"
#include "sim_internal.h"

/* ---- Event queue ---------------------------------------------------------- */

static int kagi__ev_less(const kagi__ev *a, const kagi__ev *b)
{
    return a->t < b->t || (a->t == b->t && a->order < b->order);
}

int kagi__evq_push(kagi__evq *q, double t, uint32_t kind, uint32_t id, uint32_t epoch)
{
    if (q->n == q->cap) {
        size_t nc = q->cap ? q->cap * 2 : 1024;
        kagi__ev *h = realloc(q->h, nc * sizeof *h);
        if (!h) return kagi__err(KAGI_ERR_NOMEM, "sim: out of memory (event queue)");
        q->h = h;
        q->cap = nc;
    }
    kagi__ev e = {t, ((uint64_t)kind << 56) | (q->seq++ & (((uint64_t)1 << 56) - 1)), kind, id,
                  epoch};
    size_t i = q->n++;
    KAGI__HEAP_SIFT_UP(q->h, i, e, kagi__ev_less);
    return KAGI_OK;
}

int kagi__evq_pop(kagi__evq *q, kagi__ev *out)
{
    if (!q->n) return 0;
    *out = q->h[0];
    kagi__ev last = q->h[--q->n];
    KAGI__HEAP_SIFT_DOWN(q->h, q->n, last, kagi__ev_less);
    return 1;
}

void kagi__evq_free(kagi__evq *q)
{
    free(q->h);
    memset(q, 0, sizeof *q);
}

/* ---- Lazy key production ---------------------------------------------------- */

/* Whole deliveries of a chunked link completed in (on_since, t]: the k-th
 * lands at on_since + k chunk_s, computed by multiplication so that event
 * times and counts agree exactly. */
static uint64_t kagi__chunks_by(const kagi__lk *l, double t)
{
    if (!(t > l->on_since)) return 0;
    double x = (t - l->on_since) / l->chunk_s;
    if (x >= 9e15) x = 9e15;
    uint64_t k = (uint64_t)x;
    while (k > 0 && l->on_since + (double)k * l->chunk_s > t) k--;
    while (l->on_since + (double)(k + 1) * l->chunk_s <= t) k++;
    return k;
}

static void kagi__deliver(kagi__lk *l, uint64_t bits, uint64_t nblocks)
{
    uint64_t room = l->cap - l->pool;
    uint64_t acc = bits < room ? bits : room;
    l->generated += bits;
    l->pool += acc;
    if (acc != bits) l->discarded += bits - acc;
    l->blocks += nblocks;
}

void kagi__mat_slow(kagi_sim *s, kagi__lk *l, double t)
{
    (void)s;
    if (!l->producing) {
        l->next_due = INFINITY;
        return;
    }
    if (l->kind == KAGI_SC_LINK_SCHEDULED) {
        while (l->wnext < l->nwin && l->win[l->wnext].t1_s <= t) {
            const kagi_sc_window *w = &l->win[l->wnext++];
            if (w->t0_s >= l->on_since) kagi__deliver(l, w->bits, 1);
        }
        l->next_due = l->wnext < l->nwin ? l->win[l->wnext].t1_s : INFINITY;
        return;
    }
    uint64_t k = kagi__chunks_by(l, t);
    if (k > l->done) {
        uint64_t n = k - l->done;
        l->done = k;
        kagi__deliver(l, n * l->chunk_bits, n);
    }
    l->next_due = l->on_since + (double)(l->done + 1) * l->chunk_s;
}

double kagi__ready(const kagi_sim *s, const kagi__lk *l, uint64_t need)
{
    if (l->pool >= need) return s->now;
    if (!l->producing || need > l->cap) return INFINITY;
    uint64_t deficit = need - l->pool;
    if (l->kind == KAGI_SC_LINK_SCHEDULED) {
        uint64_t got = 0;
        for (size_t w = l->wnext; w < l->nwin; w++) {
            if (l->win[w].t0_s < l->on_since) continue;
            got += l->win[w].bits;
            if (got >= deficit) return l->win[w].t1_s;
        }
        return INFINITY;
    }
    uint64_t k = (deficit + l->chunk_bits - 1) / l->chunk_bits;
    return l->on_since + (double)(l->done + k) * l->chunk_s;
}

/* Bring the link's flags in line with its state and its nodes'. */
static void kagi__set_producing(kagi_sim *s, kagi__lk *l)
{
    l->usable = !l->cut && s->up[l->a] && s->up[l->b];
    int p = l->usable && !l->eve &&
            (l->kind == KAGI_SC_LINK_SCHEDULED ? l->nwin > 0 : l->chunk_bits > 0);
    if (p == l->producing) return;
    if (p) {
        l->on_since = s->now; /* a block under way when it stopped is lost */
        l->done = 0;
        l->producing = 1;
        if (l->kind == KAGI_SC_LINK_SCHEDULED) {
            l->next_due = -INFINITY; /* the slow path finds the next window */
            kagi__mat_slow(s, l, s->now);
        } else {
            l->next_due = s->now + l->chunk_s;
        }
    } else {
        kagi__mat(s, l, s->now);
        l->producing = 0;
        l->next_due = INFINITY;
    }
}

/* ---- Set-up --------------------------------------------------------------- */

static uint64_t kagi__mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* A sampling interval giving at most ~1000 samples, from a list of round
 * values. */
static double kagi__auto_sample(double dur)
{
    static const double nice[] = {1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600,
                                  43200, 86400, 172800, 604800, 2592000};
    for (size_t i = 0; i < sizeof nice / sizeof *nice; i++)
        if (dur / nice[i] <= 1000) return nice[i];
    return dur / 1000;
}

/* Two sorted window lists into one (malloc'd, or NULL when both are
 * empty); their overlaps are found by kagi__merge_windows. */
static int kagi__join_windows(const kagi_sc_window *a, size_t na, const kagi_sc_window *b,
                              size_t nb, kagi_sc_window **out, size_t *n)
{
    *out = NULL;
    *n = na + nb;
    if (!*n) return KAGI_OK;
    kagi_sc_window *w = malloc(*n * sizeof *w);
    if (!w) return kagi__err(KAGI_ERR_NOMEM, "sim: out of memory");
    size_t i = 0, j = 0, k = 0;
    while (i < na || j < nb)
        w[k++] = j >= nb || (i < na && a[i].t0_s <= b[j].t0_s) ? a[i++] : b[j++];
    *out = w;
    return KAGI_OK;
}

/* The link's own windows and the extra ones (both sorted) into l->win;
 * KAGI_ERR_ARG if any two overlap or one is empty. */
static int kagi__merge_windows(kagi__lk *l, const kagi_sc_link *sl, const kagi_sc_window *extra,
                               size_t nextra)
{
    size_t n;
    KAGI__TRY(kagi__join_windows(sl->windows, sl->nwindows, extra, nextra, &l->win, &n));
    for (size_t k = 1; k < n; k++)
        if (l->win[k].t0_s < l->win[k - 1].t1_s || !(l->win[k].t1_s > l->win[k].t0_s))
            return kagi__err(KAGI_ERR_ARG, "sim: link %s: windows overlap (%g s .. %g s and "
                             "%g s .. %g s)", sl->name, l->win[k - 1].t0_s, l->win[k - 1].t1_s,
                             l->win[k].t0_s, l->win[k].t1_s);
    l->nwin = n;
    return KAGI_OK;
}

/* Rate, QBER and delivery size of one link. */
static int kagi__link_rate(kagi_sim *s, size_t i)
{
    const kagi_sc_link *sl = &s->sc->links[i];
    kagi__lk *l = &s->lk[i];
    const kagi_sc_node *na = &s->sc->nodes[sl->a], *nb = &s->sc->nodes[sl->b];
    l->length_km = sl->length_km >= 0
                       ? sl->length_km
                       : kagi_great_circle_km(na->lat_deg, na->lon_deg, nb->lat_deg, nb->lon_deg) *
                             sl->route_factor;
    if (sl->kind == KAGI_SC_LINK_FIXED) {
        l->rate_bps = sl->key_rate_bps;
        uint64_t b = sl->block_bits ? sl->block_bits : (uint64_t)llround(sl->key_rate_bps);
        l->chunk_bits = b ? b : 1;
        l->chunk_s = (double)l->chunk_bits / l->rate_bps;
        return KAGI_OK;
    }
    if (sl->kind == KAGI_SC_LINK_SCHEDULED) {
        kagi_sc_window *extra = NULL, *both = NULL;
        size_t nextra = 0, nboth = 0;
        if (sl->sat) { /* no fixed length (the range varies), a QBER per pass */
            l->length_km = NAN;
            l->qber_model = NAN;
        }
        if (s->opts.windows) {
            int rc = s->opts.windows(s->opts.windows_ctx, s->sc, i, 0, s->end, &extra, &nextra);
            if (rc != KAGI_OK) {
                free(extra);
                return rc;
            }
        }
        int rc = kagi__join_windows(s->pwin[i], s->npwin[i], extra, nextra, &both, &nboth);
        free(extra);
        if (rc == KAGI_OK) rc = kagi__merge_windows(l, sl, both, nboth);
        free(both);
        free(s->pwin[i]);
        s->pwin[i] = NULL;
        if (rc) return rc;
        double bits = 0, span = 0;
        for (size_t w = 0; w < l->nwin; w++) {
            bits += (double)l->win[w].bits;
            span = l->win[w].t1_s;
        }
        l->rate_bps = span > 0 ? bits / (s->end > span ? s->end : span) : 0;
        return KAGI_OK;
    }
    kagi_link m = sl->model;
    m.distance_km = l->length_km;
    kagi_rate r;
    kagi_protocol p = sl->protocol;
    kagi_decoys d = p == KAGI_PROTO_TF_QKD ? KAGI_DECOYS_INFINITE : sl->decoys;
    int rc = sl->optimize ? kagi_keyrate_optimize(p, d, &m, sl->n_block, &r)
                          : kagi_keyrate(p, d, &m, sl->n_block, &r);
    if (rc != KAGI_OK) {
        char det[400];
        snprintf(det, sizeof det, "%s", kagi_errdetail());
        if (s->sc->origin[0])
            return kagi__err(rc, "%s:%zu: links[%zu] (%s): %s", s->sc->origin, sl->line, i,
                             sl->name, det);
        return kagi__err(rc, "links[%zu] (%s): %s", i, sl->name, det);
    }
    l->qber_model = r.qber;
    l->rate_bps = r.bps;
    if (!(r.bps > 0)) return KAGI_OK; /* no key at this length: never produces */
    if (sl->n_block > 0) {
        /* a finite block: floor(length) bits every block_pulses pulses */
        double bits = nearbyint(r.per_pulse * r.block_pulses);
        if (!(bits >= 1)) return KAGI_OK;
        l->chunk_bits = (uint64_t)bits;
    } else {
        double b = nearbyint(r.bps);
        l->chunk_bits = b >= 1 ? (uint64_t)b : 1;
    }
    l->chunk_s = (double)l->chunk_bits / r.bps;
    return KAGI_OK;
}

/* Pool capacities: explicit pool_bits, else an even share of what each
 * end's key store has left after the explicit ones; the smaller end's. */
static void kagi__pool_caps(kagi_sim *s)
{
    const kagi_scenario *sc = s->sc;
    uint64_t *left = calloc(s->nn, sizeof *left);
    uint32_t *cnt = calloc(s->nn, sizeof *cnt);
    if (!left || !cnt) {
        free(left);
        free(cnt);
        for (size_t i = 0; i < s->nl; i++) s->lk[i].cap = 0;
        return;
    }
    for (size_t n = 0; n < s->nn; n++) left[n] = sc->nodes[n].capacity_bits;
    for (size_t i = 0; i < s->nl; i++) {
        const kagi_sc_link *l = &sc->links[i];
        if (l->pool_bits) {
            left[l->a] -= l->pool_bits;
            left[l->b] -= l->pool_bits;
        } else {
            cnt[l->a]++;
            cnt[l->b]++;
        }
    }
    for (size_t i = 0; i < s->nl; i++) {
        const kagi_sc_link *l = &sc->links[i];
        if (l->pool_bits) {
            s->lk[i].cap = l->pool_bits;
            continue;
        }
        uint64_t ca = left[l->a] / cnt[l->a], cb = left[l->b] / cnt[l->b];
        s->lk[i].cap = ca < cb ? ca : cb;
    }
    free(left);
    free(cnt);
}

static int kagi__schedule_next_request(kagi_sim *s, size_t i);

static int kagi__cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int kagi_sim_new(const kagi_scenario *sc, const kagi_sim_opts *opts, kagi_sim **out)
{
    KAGI__TRY(kagi__scenario_validate(sc, 1));
    kagi_sim *s = calloc(1, sizeof *s);
    if (!s) return kagi__err(KAGI_ERR_NOMEM, "sim: out of memory");
    s->sc = sc;
    if (opts) s->opts = *opts;
    s->end = s->opts.until_s > 0 ? s->opts.until_s : sc->duration_s;
    s->seed = s->opts.has_seed ? s->opts.seed : sc->seed;
    s->sample_s = sc->sample_s > 0 ? sc->sample_s : kagi__auto_sample(s->end);
    s->nn = sc->nnodes;
    s->nl = sc->nlinks;
    s->nd = sc->ndemands;
    int rc = KAGI_ERR_NOMEM;
    s->up = malloc(s->nn);
    s->adj_off = calloc(s->nn + 1, sizeof *s->adj_off);
    s->adj = malloc((2 * s->nl + 1) * sizeof *s->adj);
    s->lk = aligned_alloc(64, (s->nl + 1) * sizeof *s->lk);
    if (s->lk) memset(s->lk, 0, (s->nl + 1) * sizeof *s->lk);
    s->trusted = malloc(s->nn);
    s->adjn = malloc((2 * s->nl + 1) * sizeof *s->adjn);
    s->dm = calloc(s->nd + 1, sizeof *s->dm);
    double nsd = floor(s->end / s->sample_s) + 2;
    if (nsd * (double)(s->nl * 3 + s->nd * 2) * 8 > 8e9) {
        kagi_sim_free(s);
        return kagi__err(KAGI_ERR_ARG, "sim: the time series would need more than 8 GB: "
                         "raise sample (now %g s)", s->sample_s);
    }
    s->nsmax = (size_t)nsd;
    s->st = malloc(s->nsmax * sizeof *s->st);
    s->s_link = malloc(s->nsmax * (s->nl * 3 + 1) * sizeof *s->s_link);
    s->s_dem = malloc(s->nsmax * (s->nd * 4 + 1) * sizeof *s->s_dem);
    if (!s->up || !s->adj_off || !s->adj || !s->lk || !s->dm || !s->st || !s->s_link ||
        !s->s_dem || !s->trusted || !s->adjn)
        goto fail;
    memset(s->up, 1, s->nn);
    for (size_t n = 0; n < s->nn; n++) s->trusted[n] = (uint8_t)(sc->nodes[n].trusted != 0);
    for (size_t i = 0; i < s->nl; i++) {
        s->adj_off[sc->links[i].a + 1]++;
        s->adj_off[sc->links[i].b + 1]++;
    }
    for (size_t n = 0; n < s->nn; n++) s->adj_off[n + 1] += s->adj_off[n];
    {
        uint32_t *fill = malloc((s->nn + 1) * sizeof *fill);
        if (!fill) goto fail;
        memcpy(fill, s->adj_off, (s->nn + 1) * sizeof *fill);
        for (size_t i = 0; i < s->nl; i++) {
            s->adjn[fill[sc->links[i].a]] = (uint32_t)sc->links[i].b;
            s->adj[fill[sc->links[i].a]++] = (uint32_t)i;
            s->adjn[fill[sc->links[i].b]] = (uint32_t)sc->links[i].a;
            s->adj[fill[sc->links[i].b]++] = (uint32_t)i;
        }
        free(fill);
    }
    if ((rc = kagi__passes_compute(s)) != KAGI_OK) goto fail;
    for (size_t i = 0; i < s->nl; i++) {
        kagi__lk *l = &s->lk[i];
        l->a = (uint32_t)sc->links[i].a;
        l->b = (uint32_t)sc->links[i].b;
        l->kind = (uint8_t)sc->links[i].kind;
        if ((rc = kagi__link_rate(s, i)) != KAGI_OK) goto fail;
        l->qber = l->qber_model;
    }
    free(s->pwin);
    free(s->npwin);
    s->pwin = NULL;
    s->npwin = NULL;
    kagi__pool_caps(s);
    s->first_t = malloc((s->nl + 1) * sizeof *s->first_t);
    if (!s->first_t) {
        rc = KAGI_ERR_NOMEM;
        goto fail;
    }
    for (size_t i = 0; i < s->nl; i++) {
        kagi__lk *l = &s->lk[i];
        kagi__set_producing(s, l);
        if (l->kind != KAGI_SC_LINK_SCHEDULED && isfinite(l->next_due))
            s->first_t[s->nfirst++] = l->next_due;
    }
    qsort(s->first_t, s->nfirst, sizeof *s->first_t, kagi__cmp_double);
    s->warm = s->nfirst ? s->first_t[s->nfirst - 1] : 0;
    if ((rc = kagi__route_init(s)) != KAGI_OK) goto fail;
    /* Scenario events go into the queue one at a time (the next one when
     * the previous is applied), ahead of everything else at their time. */
    if (sc->nevents && (rc = kagi__evq_push(&s->q, sc->events[0].at_s, KAGI__EV_SCENARIO, 0, 0)))
        goto fail;
    if ((rc = kagi__evq_push(&s->q, 0, KAGI__EV_SAMPLE, 0, 0))) goto fail;
    for (size_t i = 0; i < s->nd; i++) {
        const kagi_sc_demand *d = &sc->demands[i];
        kagi__dm *m = &s->dm[i];
        kagi_rng_seed(&m->rng, kagi__mix(s->seed ^ kagi__mix(i + 1)));
        if (d->nschedule) {
            m->sched_k = calloc(d->nschedule, sizeof *m->sched_k);
            if (!m->sched_k) {
                rc = KAGI_ERR_NOMEM;
                goto fail;
            }
        } else {
            m->interval_s = (double)d->key_bits / d->rate_bps;
        }
        m->next_t = d->start_s;
        if ((rc = kagi__schedule_next_request(s, i))) goto fail;
    }
    s->wall_last = kagi__now();
    *out = s;
    return KAGI_OK;
fail:
    if (rc == KAGI_ERR_NOMEM) kagi__err(KAGI_ERR_NOMEM, "sim: out of memory");
    kagi_sim_free(s);
    return rc;
}

void kagi_sim_free(kagi_sim *s)
{
    if (!s) return;
    for (size_t i = 0; s->lk && i < s->nl; i++) free(s->lk[i].win);
    for (size_t i = 0; s->pwin && i < s->nl; i++) free(s->pwin[i]);
    free(s->pwin);
    free(s->npwin);
    free(s->pass);
    free(s->first_t);
    for (size_t i = 0; s->dm && i < s->nd; i++) {
        free(s->dm[i].sched_k);
        free(s->dm[i].qt);
        free(s->dm[i].qb);
        free(s->dm[i].path);
    }
    kagi__evq_free(&s->q);
    free(s->up);
    free(s->trusted);
    free(s->adjn);
    free(s->adj_off);
    free(s->adj);
    free(s->lk);
    free(s->dm);
    free(s->dist);
    free(s->hops);
    free(s->prev);
    free(s->seen);
    free(s->ban);
    free(s->lban);
    free(s->rh);
    free(s->tmp_path);
    free(s->hcache);
    free(s->hslot);
    free(s->bfsq);
    free(s->st);
    free(s->s_link);
    free(s->s_dem);
    free(s->log);
    free(s);
}

/* ---- Demands ---------------------------------------------------------------- */

/* Queue the demand's next request, if any falls before its stop and the
 * end. */
static int kagi__schedule_next_request(kagi_sim *s, size_t i)
{
    const kagi_sc_demand *d = &s->sc->demands[i];
    kagi__dm *m = &s->dm[i];
    double t;
    if (d->nschedule) {
        /* the earliest pending occurrence over all entries (ties: the
         * first entry); occurrences before start are skipped */
        for (;;) {
            size_t best = SIZE_MAX;
            double bt = INFINITY;
            for (size_t k = 0; k < d->nschedule; k++) {
                const kagi_sc_request *r = &d->schedule[k];
                if (m->sched_k[k] >= r->count) continue;
                double tk = r->at_s + (double)m->sched_k[k] * r->every_s;
                if (tk < bt) {
                    bt = tk;
                    best = k;
                }
            }
            if (best == SIZE_MAX) return KAGI_OK;
            m->sched_k[best]++;
            t = bt;
            m->next_bits = d->schedule[best].bits;
            if (t >= d->start_s) break;
        }
    } else if (d->poisson) {
        double u = kagi_rng_uniform(&m->rng);
        t = m->next_t + -log1p(-u) * m->interval_s;
        m->next_bits = d->key_bits;
    } else {
        t = d->start_s + (double)(m->nreq + 1) * m->interval_s;
        m->next_bits = d->key_bits;
    }
    if (t > d->stop_s || t > s->end) return KAGI_OK;
    m->nreq++;
    m->next_t = t;
    return kagi__evq_push(&s->q, t, KAGI__EV_REQUEST, (uint32_t)i, 0);
}

static int kagi__node_ok(const kagi_sim *s, uint32_t n) { return s->up[n]; }

/* Can the cached route serve size bits now, without a hop growing scarce?
 * Links and nodes are checked again only when an event changed some. */
static int kagi__cached_ok(kagi_sim *s, kagi__dm *m, const kagi_sc_demand *d, uint64_t size)
{
    if (!m->npaths || m->npaths != d->split) return 0;
    /* found while some links had not delivered a first block: look again
     * once another has (else the first makeshift route sticks) */
    if (m->route_t < s->warm) {
        size_t lo = 0, hi = s->nfirst; /* the first delivery after route_t */
        while (lo < hi) {
            size_t mid = (lo + hi) / 2;
            if (s->first_t[mid] <= m->route_t) lo = mid + 1;
            else hi = mid;
        }
        if (lo < s->nfirst && s->first_t[lo] <= s->now) return 0;
    }
    const uint32_t *p = m->path;
    const double reserve = s->sc->route_reserve, now = s->now;
    const int recheck = m->topo != s->topo;
    for (uint32_t k = 0; k < m->npaths; k++) {
        uint32_t h = m->plen[k];
        uint64_t need = kagi__need(s, size, h);
        uint64_t thr = (double)need * reserve > (double)need ? (uint64_t)ceil((double)need * reserve)
                                                             : need;
        uint32_t at = (uint32_t)d->src;
        for (uint32_t j = 0; j < h; j++) {
            kagi__lk *l = &s->lk[p[j]];
            if (recheck) {
                if (!l->usable) return 0;
                uint32_t next = l->a == at ? l->b : l->a;
                if (j + 1 < h && (!s->trusted[next] || !s->up[next])) return 0;
                at = next;
            }
            /* a full pool stays full whatever arrived (kagi__draw brings
             * it up to date before drawing) */
            if (l->pool != l->cap) kagi__mat(s, l, now);
            /* a satellite link's pool is a stock between passes: spent
             * until it cannot cover the hop (docs/sim.md, routing) */
            if (l->pool < (l->kind == KAGI_SC_LINK_SCHEDULED ? need : thr)) return 0;
        }
        p += h;
    }
    m->topo = s->topo;
    return 1;
}

/* Draw the key for one request along the cached paths. */
static void kagi__draw(kagi_sim *s, kagi__dm *m, uint64_t size)
{
    const uint32_t *p = m->path;
    for (uint32_t k = 0; k < m->npaths; k++) {
        uint32_t h = m->plen[k];
        uint64_t need = kagi__need(s, size, h);
        for (uint32_t j = 0; j < h; j++) {
            kagi__lk *l = &s->lk[p[j]];
            kagi__mat(s, l, s->now); /* deliveries before the draw first */
            l->pool -= need;
            l->consumed += need;
            if (h == 1) {
                l->direct_keys++;
                l->direct_bits += size;
            } else {
                l->relay_msgs++;
                l->relay_payload += size;
            }
        }
        m->drawn_bits += need * h;
        if (h > 1) m->hop_msgs += h;
        p += h;
    }
}

/* Serve one request of size bits made at t_req now, if a route can. */
static int kagi__try_serve(kagi_sim *s, size_t i, uint64_t size, double t_req, int *served)
{
    const kagi_sc_demand *d = &s->sc->demands[i];
    kagi__dm *m = &s->dm[i];
    *served = 0;
    if (!kagi__node_ok(s, (uint32_t)d->src) || !kagi__node_ok(s, (uint32_t)d->dst)) return KAGI_OK;
    if (!kagi__cached_ok(s, m, d, size)) {
        m->routes++;
        uint32_t plen[8];
        unsigned got = kagi__routes(s, (uint32_t)d->src, (uint32_t)d->dst, size, KAGI__KEY,
                                    d->split, s->tmp_path, plen, NULL);
        m->npaths = 0;
        if (got < d->split) return KAGI_OK;
        /* keep the route in a block of its own size: the cache check runs
         * on every request, so its memory should be small and dense */
        size_t total = 0;
        for (unsigned k = 0; k < got; k++) total += plen[k];
        if (m->pathcap < total || m->pathcap > 2 * total + 8) {
            uint32_t *np = realloc(m->path, total * sizeof *np);
            if (!np) return kagi__err(KAGI_ERR_NOMEM, "sim: out of memory (routes)");
            m->path = np;
            m->pathcap = total;
        }
        memcpy(m->path, s->tmp_path, total * sizeof *m->path);
        memcpy(m->plen, plen, sizeof plen);
        m->npaths = got;
        m->topo = s->topo;
        m->route_t = s->now;
    }
    kagi__draw(s, m, size);
    double w = s->now - t_req;
    m->served++;
    m->served_bits += size;
    m->wait_total += w;
    if (w > m->wait_max) m->wait_max = w;
    *served = 1;
    return KAGI_OK;
}

static int kagi__q_push(kagi__dm *m, double t, uint64_t bits)
{
    if (m->qlen == m->qcap) {
        size_t nc = m->qcap ? m->qcap * 2 : 16;
        double *qt = malloc(nc * sizeof *qt);
        uint64_t *qb = malloc(nc * sizeof *qb);
        if (!qt || !qb) {
            free(qt);
            free(qb);
            return kagi__err(KAGI_ERR_NOMEM, "sim: out of memory (queues)");
        }
        for (size_t k = 0; k < m->qlen; k++) {
            qt[k] = m->qt[(m->qhead + k) % m->qcap];
            qb[k] = m->qb[(m->qhead + k) % m->qcap];
        }
        free(m->qt);
        free(m->qb);
        m->qt = qt;
        m->qb = qb;
        m->qhead = 0;
        m->qcap = nc;
    }
    size_t at = (m->qhead + m->qlen) % m->qcap;
    m->qt[at] = t;
    m->qb[at] = bits;
    m->qlen++;
    return KAGI_OK;
}

static void kagi__q_pop(kagi__dm *m)
{
    m->qhead = (m->qhead + 1) % m->qcap;
    m->qlen--;
}

/* Arm the time-out of the head of the queue. */
static int kagi__arm_timeout(kagi_sim *s, size_t i)
{
    const kagi_sc_demand *d = &s->sc->demands[i];
    kagi__dm *m = &s->dm[i];
    m->to_epoch++;
    if (!m->qlen || !isfinite(d->timeout_s)) return KAGI_OK;
    return kagi__evq_push(&s->q, m->qt[m->qhead] + d->timeout_s, KAGI__EV_TIMEOUT, (uint32_t)i,
                          m->to_epoch);
}

/* Arm a retry of the head at the soonest time a route could serve it if no
 * other demand drew from its pools; none when no route can (a repair or a
 * node coming back wakes every waiting demand). */
static int kagi__arm_wake(kagi_sim *s, size_t i)
{
    const kagi_sc_demand *d = &s->sc->demands[i];
    kagi__dm *m = &s->dm[i];
    m->wake_epoch++;
    if (!m->qlen) return KAGI_OK;
    if (!s->up[d->src] || !s->up[d->dst]) return KAGI_OK;
    double when = INFINITY;
    unsigned got = kagi__routes(s, (uint32_t)d->src, (uint32_t)d->dst, m->qb[m->qhead],
                                KAGI__WHEN, d->split, s->tmp_path, NULL, &when);
    if (got < d->split || !isfinite(when)) return KAGI_OK;
    /* The greedy disjoint search can disagree with the key-aware one by a
     * hair; then retry a second later, never at the same instant twice. */
    if (!(when > s->now)) when = s->now + 1;
    if (when > s->end) return KAGI_OK;
    return kagi__evq_push(&s->q, when, KAGI__EV_WAKE, (uint32_t)i, m->wake_epoch);
}

static int kagi__on_request(kagi_sim *s, size_t i)
{
    const kagi_sc_demand *d = &s->sc->demands[i];
    kagi__dm *m = &s->dm[i];
    uint64_t bits = m->next_bits;
    m->requests++;
    KAGI__TRY(kagi__schedule_next_request(s, i));
    if (m->qlen) { /* FIFO: behind the ones already waiting */
        if (m->qlen >= d->max_queue) {
            m->blocked++;
            return KAGI_OK;
        }
        return kagi__q_push(m, s->now, bits);
    }
    int served;
    KAGI__TRY(kagi__try_serve(s, i, bits, s->now, &served));
    if (served) return KAGI_OK;
    if (d->policy == KAGI_SC_BLOCK || d->max_queue == 0) {
        m->blocked++;
        return KAGI_OK;
    }
    KAGI__TRY(kagi__q_push(m, s->now, bits));
    KAGI__TRY(kagi__arm_timeout(s, i));
    return kagi__arm_wake(s, i);
}

static int kagi__on_wake(kagi_sim *s, size_t i)
{
    kagi__dm *m = &s->dm[i];
    size_t before = m->qlen;
    s->retries++;
    while (m->qlen) {
        int served;
        KAGI__TRY(kagi__try_serve(s, i, m->qb[m->qhead], m->qt[m->qhead], &served));
        if (!served) break;
        kagi__q_pop(m);
    }
    if (m->qlen != before) KAGI__TRY(kagi__arm_timeout(s, i));
    return kagi__arm_wake(s, i);
}

static int kagi__on_timeout(kagi_sim *s, size_t i)
{
    const kagi_sc_demand *d = &s->sc->demands[i];
    kagi__dm *m = &s->dm[i];
    while (m->qlen && m->qt[m->qhead] + d->timeout_s <= s->now) {
        kagi__q_pop(m);
        m->timed_out++;
    }
    KAGI__TRY(kagi__arm_timeout(s, i));
    return kagi__arm_wake(s, i);
}

/* Something came back: every waiting demand retries now. */
static int kagi__wake_all(kagi_sim *s)
{
    for (size_t i = 0; i < s->nd; i++) {
        kagi__dm *m = &s->dm[i];
        if (!m->qlen) continue;
        m->wake_epoch++;
        KAGI__TRY(kagi__evq_push(&s->q, s->now, KAGI__EV_WAKE, (uint32_t)i, m->wake_epoch));
    }
    return KAGI_OK;
}

/* ---- Scenario events and samples --------------------------------------------- */

static int kagi__apply(kagi_sim *s, const kagi_sc_event *e)
{
    int better = 0;
    s->topo++;
    switch (e->kind) {
    case KAGI_SC_CUT:
    case KAGI_SC_EAVESDROP:
    case KAGI_SC_REPAIR: {
        kagi__lk *l = &s->lk[e->target];
        kagi__mat(s, l, s->now);
        if (e->kind == KAGI_SC_CUT) {
            l->cut = 1;
        } else if (e->kind == KAGI_SC_EAVESDROP) {
            l->eve = 1;
            l->qber = e->qber;
        } else {
            better = l->cut || l->eve;
            l->cut = l->eve = 0;
            l->qber = l->qber_model;
        }
        kagi__set_producing(s, l);
        break;
    }
    case KAGI_SC_NODE_DOWN:
    case KAGI_SC_NODE_UP: {
        int up = e->kind == KAGI_SC_NODE_UP;
        better = up && !s->up[e->target];
        for (uint32_t k = s->adj_off[e->target]; k < s->adj_off[e->target + 1]; k++)
            kagi__mat(s, &s->lk[s->adj[k]], s->now);
        s->up[e->target] = (uint8_t)up;
        for (uint32_t k = s->adj_off[e->target]; k < s->adj_off[e->target + 1]; k++)
            kagi__set_producing(s, &s->lk[s->adj[k]]);
        break;
    }
    }
    kagi_sim_log *nl = realloc(s->log, (s->nlog + 1) * sizeof *nl);
    if (!nl) return kagi__err(KAGI_ERR_NOMEM, "sim: out of memory");
    s->log = nl;
    s->log[s->nlog++] = (kagi_sim_log){s->now, e->kind, e->target};
    return better ? kagi__wake_all(s) : KAGI_OK;
}

static void kagi__sample(kagi_sim *s)
{
    if (s->ns >= s->nsmax) return;
    size_t k = s->ns++;
    s->st[k] = s->now;
    uint64_t *L = s->s_link + k * s->nl * 3;
    for (size_t i = 0; i < s->nl; i++) {
        kagi__lk *l = &s->lk[i];
        kagi__mat(s, l, s->now);
        L[3 * i + KAGI_SIM_POOL] = l->pool;
        L[3 * i + KAGI_SIM_GENERATED] = l->generated;
        L[3 * i + KAGI_SIM_CONSUMED] = l->consumed;
    }
    uint32_t *D = s->s_dem + k * s->nd * 4;
    for (size_t i = 0; i < s->nd; i++) {
        const kagi__dm *m = &s->dm[i];
        D[4 * i + KAGI_SIM_SERVED] = (uint32_t)m->served;
        D[4 * i + KAGI_SIM_BLOCKED] = (uint32_t)m->blocked;
        D[4 * i + KAGI_SIM_TIMED_OUT] = (uint32_t)m->timed_out;
        D[4 * i + KAGI_SIM_WAITING] = (uint32_t)m->qlen;
    }
}

/* ---- The loop ---------------------------------------------------------------- */

int kagi_sim_run_until(kagi_sim *s, double t)
{
    if (t > s->end) t = s->end;
    kagi__ev e;
    while (s->q.n && s->q.h[0].t <= t) {
        kagi__evq_pop(&s->q, &e);
        s->now = e.t;
        s->events++;
        int rc = KAGI_OK;
        switch (e.kind) {
        case KAGI__EV_SCENARIO: {
            const kagi_scenario *sc = s->sc;
            rc = kagi__apply(s, &sc->events[s->next_event++]);
            if (!rc && s->next_event < sc->nevents && sc->events[s->next_event].at_s <= s->end)
                rc = kagi__evq_push(&s->q, sc->events[s->next_event].at_s, KAGI__EV_SCENARIO, 0,
                                    0);
            break;
        }
        case KAGI__EV_WAKE:
            if (e.epoch == s->dm[e.id].wake_epoch) rc = kagi__on_wake(s, e.id);
            break;
        case KAGI__EV_TIMEOUT:
            if (e.epoch == s->dm[e.id].to_epoch) rc = kagi__on_timeout(s, e.id);
            break;
        case KAGI__EV_REQUEST:
            rc = kagi__on_request(s, e.id);
            break;
        case KAGI__EV_SAMPLE: {
            kagi__sample(s);
            if (s->opts.check_each_sample) rc = kagi_sim_check(s);
            double next = (double)s->ns * s->sample_s;
            if (!rc && s->now < s->end)
                rc = kagi__evq_push(&s->q, next < s->end ? next : s->end, KAGI__EV_SAMPLE, 0, 0);
            break;
        }
        }
        if (rc) return rc;
        if (s->opts.progress && !(s->events & 1023)) {
            double w = kagi__now();
            if (w - s->wall_last >= 0.1) {
                s->wall_last = w;
                s->opts.progress(s->opts.progress_ctx, s->now, s->end);
            }
        }
    }
    if (t > s->now) s->now = t;
    for (size_t i = 0; i < s->nl; i++) kagi__mat(s, &s->lk[i], s->now);
    return KAGI_OK;
}

int kagi_sim_run(kagi_sim *s)
{
    KAGI__TRY(kagi_sim_run_until(s, s->end));
    if (s->opts.progress) s->opts.progress(s->opts.progress_ctx, s->now, s->end);
    return kagi_sim_check(s);
}

/* ---- Invariants -------------------------------------------------------------- */

#define KAGI__INV(cond, ...) KAGI__FAIL_IF(!(cond), KAGI_ERR_VERIFY, "sim invariant: " __VA_ARGS__)

int kagi_sim_check(const kagi_sim *s)
{
    const kagi_scenario *sc = s->sc;
    uint64_t consumed = 0, drawn = 0;
    uint64_t *used = calloc(s->nn + 1, sizeof *used);
    if (!used) return kagi__err(KAGI_ERR_NOMEM, "sim: out of memory");
    for (size_t i = 0; i < s->nl; i++) {
        const kagi__lk *l = &s->lk[i];
        const char *nm = sc->links[i].name;
        /* stored = generated - discarded: what the pool had room for */
        uint64_t stored = l->generated - l->discarded;
        int ok = l->pool <= l->cap && l->discarded <= l->generated && l->consumed <= stored &&
                 l->pool == stored - l->consumed &&
                 l->consumed == l->relay_payload + l->relay_msgs * sc->mac_bits + l->direct_bits;
        if (!ok) {
            free(used);
            return kagi__err(KAGI_ERR_VERIFY, "sim invariant: link %s at %g s: pool %llu (capacity "
                             "%llu), generated %llu - discarded %llu = stored %llu, consumed %llu "
                             "= payload %llu + %llu messages x %llu + direct %llu", nm, s->now,
                             (unsigned long long)l->pool, (unsigned long long)l->cap,
                             (unsigned long long)l->generated, (unsigned long long)l->discarded,
                             (unsigned long long)stored, (unsigned long long)l->consumed,
                             (unsigned long long)l->relay_payload,
                             (unsigned long long)l->relay_msgs, (unsigned long long)sc->mac_bits,
                             (unsigned long long)l->direct_bits);
        }
        if (l->kind == KAGI_SC_LINK_SCHEDULED) {
            /* no key before the end of the window (pass) that carries it */
            uint64_t ended = 0;
            for (size_t w = 0; w < l->nwin && l->win[w].t1_s <= s->now; w++)
                ended += l->win[w].bits;
            if (l->generated > ended) {
                free(used);
                return kagi__err(KAGI_ERR_VERIFY, "sim invariant: link %s at %g s generated %llu "
                                 "bits, more than its ended windows carried (%llu)", nm, s->now,
                                 (unsigned long long)l->generated, (unsigned long long)ended);
            }
        }
        used[l->a] += l->pool;
        used[l->b] += l->pool;
        consumed += l->consumed;
    }
    for (size_t n = 0; n < s->nn; n++)
        if (used[n] > sc->nodes[n].capacity_bits) {
            unsigned long long u = used[n];
            free(used);
            return kagi__err(KAGI_ERR_VERIFY, "sim invariant: node %s holds %llu bits, above its "
                             "capacity %llu", sc->nodes[n].name, u,
                             (unsigned long long)sc->nodes[n].capacity_bits);
        }
    free(used);
    for (size_t i = 0; i < s->nd; i++) {
        const kagi__dm *m = &s->dm[i];
        drawn += m->drawn_bits;
        KAGI__INV(m->requests == m->served + m->blocked + m->timed_out + m->qlen,
                  "demand %s: %llu requests != %llu served + %llu blocked + %llu timed out + %zu "
                  "waiting", sc->demands[i].name, (unsigned long long)m->requests,
                  (unsigned long long)m->served, (unsigned long long)m->blocked,
                  (unsigned long long)m->timed_out, m->qlen);
    }
    KAGI__INV(consumed == drawn, "links consumed %llu bits, demands drew %llu",
              (unsigned long long)consumed, (unsigned long long)drawn);
    return KAGI_OK;
}

/* ---- Figures ------------------------------------------------------------------- */

const kagi_scenario *kagi_sim_scenario(const kagi_sim *s) { return s->sc; }
double kagi_sim_now(const kagi_sim *s) { return s->now; }
int kagi_sim_node_up(const kagi_sim *s, size_t i) { return i < s->nn && s->up[i]; }

void kagi_sim_link(const kagi_sim *s, size_t i, kagi_sim_link_stats *o)
{
    memset(o, 0, sizeof *o);
    if (i >= s->nl) return;
    kagi__lk l = s->lk[i]; /* a copy, brought up to now */
    kagi__mat((kagi_sim *)s, &l, s->now);
    o->length_km = l.length_km;
    o->rate_bps = l.rate_bps;
    o->qber = l.qber;
    o->block_bits = l.chunk_bits;
    o->block_s = l.chunk_s;
    o->pool_capacity_bits = l.cap;
    o->state = l.cut ? KAGI_SIM_CUT : (!s->up[l.a] || !s->up[l.b]) ? KAGI_SIM_NODE_DOWN
             : l.eve ? KAGI_SIM_EAVESDROPPED : KAGI_SIM_UP;
    o->generated_bits = l.generated;
    o->stored_bits = l.generated - l.discarded;
    o->discarded_bits = l.discarded;
    o->consumed_bits = l.consumed;
    o->pool_bits = l.pool;
    o->relay_messages = l.relay_msgs;
    o->relay_payload_bits = l.relay_payload;
    o->direct_keys = l.direct_keys;
    o->direct_bits = l.direct_bits;
}

void kagi_sim_demand(const kagi_sim *s, size_t i, kagi_sim_demand_stats *o)
{
    memset(o, 0, sizeof *o);
    if (i >= s->nd) return;
    const kagi__dm *m = &s->dm[i];
    o->requests = m->requests;
    o->served = m->served;
    o->blocked = m->blocked;
    o->timed_out = m->timed_out;
    o->waiting = m->qlen;
    o->served_bits = m->served_bits;
    o->drawn_bits = m->drawn_bits;
    o->hop_messages = m->hop_msgs;
    o->wait_total_s = m->wait_total;
    o->wait_max_s = m->wait_max;
    o->routes = m->routes;
}

void kagi_sim_get_totals(const kagi_sim *s, kagi_sim_totals *o)
{
    memset(o, 0, sizeof *o);
    o->now_s = s->now;
    o->end_s = s->end;
    o->seed = s->seed;
    o->events = s->events;
    o->retries = s->retries;
    for (size_t i = 0; i < s->nd; i++) {
        const kagi__dm *m = &s->dm[i];
        o->requests += m->requests;
        o->served += m->served;
        o->blocked += m->blocked;
        o->timed_out += m->timed_out;
        o->waiting += m->qlen;
        o->routes += m->routes;
    }
    for (size_t i = 0; i < s->nl; i++) {
        kagi__lk l = s->lk[i]; /* a copy, brought up to now, as in kagi_sim_link */
        kagi__mat((kagi_sim *)s, &l, s->now);
        o->generated_bits += l.generated;
        o->consumed_bits += l.consumed;
        o->discarded_bits += l.discarded;
        o->blocks += l.blocks;
    }
    for (size_t j = 0; j < s->npass; j++) {
        const kagi_sim_pass *p = &s->pass[j];
        o->passes++;
        o->passes_night += p->light == KAGI_SIM_NIGHT;
        o->passes_used += p->used != 0;
        o->passes_with_key += p->used && p->pass_key_bits > 0;
        o->pass_key_bits += p->key_bits;
    }
}

size_t kagi_sim_samples(const kagi_sim *s) { return s->ns; }
double kagi_sim_sample_time(const kagi_sim *s, size_t k) { return k < s->ns ? s->st[k] : NAN; }

uint64_t kagi_sim_link_sample(const kagi_sim *s, size_t k, size_t link, int what)
{
    if (k >= s->ns || link >= s->nl || what < 0 || what > 2) return 0;
    return s->s_link[(k * s->nl + link) * 3 + (size_t)what];
}

uint64_t kagi_sim_demand_sample(const kagi_sim *s, size_t k, size_t demand, int what)
{
    if (k >= s->ns || demand >= s->nd || what < 0 || what > 3) return 0;
    return s->s_dem[(k * s->nd + demand) * 4 + (size_t)what];
}

size_t kagi_sim_events_applied(const kagi_sim *s, const kagi_sim_log **out)
{
    *out = s->log;
    return s->nlog;
}
