/* Routing over the key pools: Dijkstra with a cost that grows as pools
 * drain (KAGI__KEY), or with the time a path could serve (KAGI__WHEN: the
 * latest of its hops' ready times, minimised), and node-disjoint paths for
 * keys split into XOR shares, found one after another.
 *
 * The key-aware search is A*: every hop costs at least 1, so a node's
 * least hop count to the destination over all links (cut, down or empty
 * ones too) never overestimates what is left, and it changes by at most
 * one along a link (consistent); the search then pops only the nodes that
 * can lie on a path as cheap as the best, instead of a disk around the
 * source as wide as the distance. The hop counts are one breadth-first
 * search per destination, kept. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "sim_internal.h"

int kagi__route_init(kagi_sim *s)
{
    size_t nn = s->nn ? s->nn : 1, nl = s->nl ? s->nl : 1;
    s->dist = malloc(nn * sizeof *s->dist);
    s->hops = malloc(nn * sizeof *s->hops);
    s->prev = malloc(nn * sizeof *s->prev);
    s->seen = calloc(nn, sizeof *s->seen);
    s->ban = calloc(nn, sizeof *s->ban);
    s->lban = calloc(nl, sizeof *s->lban);
    s->rhcap = 2 * nl + nn + 1;
    s->rh = malloc(s->rhcap * sizeof *s->rh);
    s->tmp_path = malloc((8 * nn + 8) * sizeof *s->tmp_path);
    s->hslot = malloc(nn * sizeof *s->hslot);
    s->bfsq = malloc(nn * sizeof *s->bfsq);
    if (!s->dist || !s->hops || !s->prev || !s->seen || !s->ban || !s->lban || !s->rh ||
        !s->tmp_path || !s->hslot || !s->bfsq)
        return KAGI_ERR_NOMEM;
    memset(s->hslot, 0xff, nn * sizeof *s->hslot);
    /* at most 64 MiB of hop counts, and not for networks whose counts could
     * pass 65534 (a path that long is not a QKD route) */
    s->hslot_cap = s->nn < 65535 ? ((size_t)64 << 20) / (2 * nn) : 0;
    return KAGI_OK;
}

/* Least hop counts to dst from every node (UINT16_MAX: none), or NULL
 * when the cache is full (the search is then plain Dijkstra). */
static const uint16_t *kagi__hops_to(kagi_sim *s, uint32_t dst)
{
    if (s->hslot[dst] != UINT32_MAX) return s->hcache + (size_t)s->hslot[dst] * s->nn;
    if (s->hslots >= s->hslot_cap) return NULL;
    if (s->hslots % 64 == 0) { /* grow in steps of 64 destinations */
        size_t nc = s->hslots + 64 < s->hslot_cap ? s->hslots + 64 : s->hslot_cap;
        uint16_t *c = realloc(s->hcache, nc * s->nn * sizeof *c);
        if (!c) {
            s->hslot_cap = s->hslots; /* no more: plain Dijkstra */
            return NULL;
        }
        s->hcache = c;
    }
    uint16_t *h = s->hcache + s->hslots * s->nn;
    memset(h, 0xff, s->nn * sizeof *h);
    size_t qh = 0, qt = 0;
    h[dst] = 0;
    s->bfsq[qt++] = dst;
    while (qh < qt) {
        uint32_t u = s->bfsq[qh++];
        for (uint32_t k = s->adj_off[u]; k < s->adj_off[u + 1]; k++) {
            uint32_t v = s->adjn[k];
            if (h[v] == UINT16_MAX) {
                h[v] = (uint16_t)(h[u] + 1);
                s->bfsq[qt++] = v;
            }
        }
    }
    s->hslot[dst] = (uint32_t)s->hslots++;
    return h;
}

/* Min-heap on (d, h): cost, then hops. */
static int kagi__hless(const struct kagi__hn *a, const struct kagi__hn *b)
{
    return a->d < b->d || (a->d == b->d && a->h < b->h);
}

static void kagi__hpush(kagi_sim *s, double d, uint32_t h, uint32_t n)
{
    if (s->rhn == s->rhcap) return; /* cannot happen: each link pushes at most twice */
    struct kagi__hn e = {d, h, n};
    size_t i = s->rhn++;
    KAGI__HEAP_SIFT_UP(s->rh, i, e, kagi__hless);
}

static struct kagi__hn kagi__hpop(kagi_sim *s)
{
    struct kagi__hn top = s->rh[0], last = s->rh[--s->rhn];
    KAGI__HEAP_SIFT_DOWN(s->rh, s->rhn, last, kagi__hless);
    return top;
}

/* One best path from src to dst avoiding banned nodes and links; its links
 * into out, their count returned (0: none), its cost in *val. */
static uint32_t kagi__one(kagi_sim *s, uint32_t src, uint32_t dst, uint64_t size, int mode,
                          uint32_t *out, double *val)
{
    if (++s->stamp == 0) {
        memset(s->seen, 0, s->nn * sizeof *s->seen);
        s->stamp = 1;
    }
    const uint32_t st = s->stamp, bs = s->banstamp;
    const double reserve = s->sc->route_reserve;
    const uint64_t relay_need = size + s->sc->mac_bits;
    /* heap keys: cost so far plus the hop counts left (A*, KAGI__KEY) */
    const uint16_t *H = mode == KAGI__KEY ? kagi__hops_to(s, dst) : NULL;
    if (H && H[src] == UINT16_MAX) return 0;
#define KAGI__H(v) (H ? (double)H[v] : 0.0)
    s->rhn = 0;
    s->dist[src] = mode == KAGI__KEY ? 0 : s->now;
    s->hops[src] = 0;
    s->seen[src] = st;
    kagi__hpush(s, s->dist[src] + KAGI__H(src), 0, src);
    int found = 0;
    while (s->rhn) {
        struct kagi__hn e = kagi__hpop(s);
        uint32_t u = e.n;
        double f = s->dist[u] + KAGI__H(u);
        if (e.d > f || (e.d == f && e.h > s->hops[u])) continue; /* a stale entry */
        const double g = s->dist[u];
        if (u == dst) {
            found = 1;
            break;
        }
        if (u != src && !s->trusted[u]) continue; /* may not relay */
        for (uint32_t k = s->adj_off[u]; k < s->adj_off[u + 1]; k++) {
            uint32_t li = s->adj[k], v = s->adjn[k];
            if (v == src || s->ban[v] == bs || s->lban[li] == bs) continue;
            if (H && H[v] == UINT16_MAX) continue; /* cannot reach dst at all */
            kagi__lk *l = &s->lk[li];
            if (!l->usable) continue;
            uint64_t need = (u == src && v == dst) ? size : relay_need;
            /* a full pool stays full whatever arrived since it was last
             * brought up to date: the key-aware search only reads it (the
             * draw that follows brings it up to date first) */
            if (mode != KAGI__KEY || l->pool != l->cap) kagi__mat(s, l, s->now);
            double c;
            if (mode == KAGI__KEY) {
                if (l->pool < need) continue;
                c = g + 1 + reserve * (double)need / (double)l->pool;
            } else {
                double r = kagi__ready(s, l, need);
                if (!isfinite(r)) continue;
                c = r > g ? r : g;
            }
            uint32_t nh = e.h + 1;
            if (s->seen[v] != st || c < s->dist[v] || (c == s->dist[v] && nh < s->hops[v])) {
                s->seen[v] = st;
                s->dist[v] = c;
                s->hops[v] = nh;
                s->prev[v] = li;
                kagi__hpush(s, c + KAGI__H(v), nh, v);
            }
        }
    }
#undef KAGI__H
    if (!found) return 0;
    uint32_t n = s->hops[dst], at = dst;
    for (uint32_t j = n; j-- > 0;) {
        uint32_t li = s->prev[at];
        out[j] = li;
        at = s->lk[li].a == at ? s->lk[li].b : s->lk[li].a;
    }
    *val = s->dist[dst];
    return n;
}

unsigned kagi__routes(kagi_sim *s, uint32_t src, uint32_t dst, uint64_t size, int mode,
                      unsigned k, uint32_t *out, uint32_t *plen, double *when)
{
    uint32_t plen_local[8];
    if (!plen) plen = plen_local;
    if (k > 8) k = 8;
    if (++s->banstamp == 0) {
        memset(s->ban, 0, s->nn * sizeof *s->ban);
        memset(s->lban, 0, s->nl * sizeof *s->lban);
        s->banstamp = 1;
    }
    double latest = s->now;
    unsigned got = 0;
    uint32_t *o = out;
    for (; got < k; got++) {
        double v;
        uint32_t n = kagi__one(s, src, dst, size, mode, o, &v);
        if (!n) break;
        plen[got] = n;
        if (mode == KAGI__WHEN && v > latest) latest = v;
        /* the next share avoids this path's relays (and its link if direct) */
        uint32_t at = src;
        for (uint32_t j = 0; j < n; j++) {
            const kagi__lk *l = &s->lk[o[j]];
            at = l->a == at ? l->b : l->a;
            if (j + 1 < n) s->ban[at] = s->banstamp;
        }
        if (n == 1) s->lban[o[0]] = s->banstamp;
        o += n;
    }
    if (when) *when = got == k ? latest : INFINITY;
    return got;
}

int kagi_sim_route(kagi_sim *s, size_t src, size_t dst, uint64_t size_bits, size_t *nodes,
                   size_t max, size_t *n)
{
    *n = 0;
    KAGI__FAIL_IF(src >= s->nn || dst >= s->nn, KAGI_ERR_ARG,
                  "route: node %zu or %zu out of range (%zu nodes)", src, dst, s->nn);
    KAGI__FAIL_IF(src == dst, KAGI_ERR_ARG, "route: from and to are the same node (%s)",
                  s->sc->nodes[src].name);
    /* tmp_path has room for 8 paths of up to nn links: one is enough */
    uint32_t len = 0;
    double when;
    if (!kagi__routes(s, (uint32_t)src, (uint32_t)dst, size_bits, KAGI__WHEN, 1, s->tmp_path,
                      &len, &when) || !len)
        return kagi__err(KAGI_ERR_NOKEY, "route: no path from %s to %s carries key",
                         s->sc->nodes[src].name, s->sc->nodes[dst].name);
    KAGI__FAIL_IF(len + 1 > max, KAGI_ERR_ARG, "route: %s to %s has %u hops, more than %zu nodes",
                  s->sc->nodes[src].name, s->sc->nodes[dst].name, len, max);
    size_t at = src;
    nodes[0] = src;
    for (uint32_t j = 0; j < len; j++) {
        const kagi__lk *l = &s->lk[s->tmp_path[j]];
        at = l->a == at ? l->b : l->a;
        nodes[j + 1] = at;
    }
    *n = (size_t)len + 1;
    return KAGI_OK;
}
