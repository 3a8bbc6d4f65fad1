/* Internals of the network simulator shared by the files of src/sim (not
 * installed). */
#ifndef KAGI_SIM_INTERNAL_H
#define KAGI_SIM_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "kagi/bits.h"
#include "kagi/scenario.h"
#include "kagi/sim.h"

/* NULL if s is a valid item name, else what is wrong with it. */
const char *kagi__name_problem(const char *s);
/* kagi_scenario_check without changing anything; need_sorted: the events
 * must already be in time order. */
int kagi__scenario_validate(const kagi_scenario *sc, int need_sorted);

/* ---- Binary min-heaps (the event queue here, the router's frontier) ------ */

/* Place e, the item just appended at index i of heap h (i a size_t lvalue,
 * clobbered), by moving it up past every parent it is LESS than. */
#define KAGI__HEAP_SIFT_UP(h, i, e, LESS)                                          \
    do {                                                                           \
        while ((i) > 0) {                                                          \
            size_t p_ = ((i) - 1) / 2;                                             \
            if (!LESS(&(e), &(h)[p_])) break;                                      \
            (h)[i] = (h)[p_];                                                      \
            (i) = p_;                                                              \
        }                                                                          \
        (h)[i] = (e);                                                              \
    } while (0)

/* With the root of heap h taken out and last, its former last item, removed
 * (n items left), fill the hole at the root with last. */
#define KAGI__HEAP_SIFT_DOWN(h, n, last, LESS)                                     \
    do {                                                                           \
        size_t i_ = 0, n_ = (n);                                                   \
        for (;;) {                                                                 \
            size_t c_ = 2 * i_ + 1;                                                \
            if (c_ >= n_) break;                                                   \
            if (c_ + 1 < n_ && LESS(&(h)[c_ + 1], &(h)[c_])) c_++;                 \
            if (!LESS(&(h)[c_], &(last))) break;                                   \
            (h)[i_] = (h)[c_];                                                     \
            i_ = c_;                                                               \
        }                                                                          \
        if (n_) (h)[i_] = (last);                                                  \
    } while (0)

/* ---- Event queue: binary heap on (time, class, sequence) ---------------- */

enum { KAGI__EV_SCENARIO = 0, KAGI__EV_WAKE, KAGI__EV_TIMEOUT, KAGI__EV_REQUEST,
       KAGI__EV_SAMPLE };

typedef struct kagi__ev {
    double t;
    uint64_t order;  /* class << 56 | sequence number */
    uint32_t kind, id, epoch;
} kagi__ev;

typedef struct kagi__evq {
    kagi__ev *h;
    size_t n, cap;
    uint64_t seq;
} kagi__evq;

int kagi__evq_push(kagi__evq *q, double t, uint32_t kind, uint32_t id, uint32_t epoch);
/* Smallest event into *out; 0 when empty. */
int kagi__evq_pop(kagi__evq *q, kagi__ev *out);
void kagi__evq_free(kagi__evq *q);

/* ---- Engine state --------------------------------------------------------- */

/* One link. The first cache line is what a request touches on every hop
 * (the pool, its counters, whether the link may carry a relay message),
 * the second what bringing the pool up to date needs; the rest is read
 * rarely. The struct is aligned to a cache line. */
typedef struct kagi__lk {
    _Alignas(64) uint64_t pool;
    double next_due;         /* when the next delivery lands; +inf if none */
    uint64_t cap;            /* a full pool needs no bringing up to date to be read */
    uint64_t consumed;
    uint64_t relay_msgs, relay_payload, direct_bits;
    uint8_t usable;          /* not cut, both ends up: may carry relay hops */
    uint8_t kind, cut, eve, producing;
    /* line 2: production */
    _Alignas(64) double on_since; /* production (re)started at */
    double chunk_s;          /* seconds per delivery (fibre, fixed) */
    uint64_t done;           /* deliveries counted since on_since */
    uint64_t chunk_bits;     /* bits per delivery */
    uint64_t direct_keys;
    uint64_t generated, blocks;
    uint32_t a, b;
    /* cold */
    uint64_t discarded;      /* generated - discarded is what was stored */
    double length_km, rate_bps, qber_model, qber;
    kagi_sc_window *win;     /* scheduled: merged windows, owned */
    size_t nwin, wnext;
} kagi__lk;

typedef struct kagi__dm {
    /* what every request reads first */
    uint64_t next_bits;
    size_t qlen;
    uint32_t *path;          /* cached route: npaths paths of plen[i] links */
    uint64_t topo;           /* ... found at this topology epoch */
    double route_t;          /* ... at this time */
    uint32_t npaths;
    uint32_t plen[8];
    uint64_t requests, served, served_bits, drawn_bits, hop_msgs;
    double wait_total, wait_max;
    uint64_t nreq;           /* requests generated so far */
    double next_t;           /* time of the pending request event */
    double interval_s;       /* rate demands */
    kagi_rng rng;
    uint64_t *sched_k;       /* schedule demands: next occurrence per entry */
    /* FIFO of waiting requests (ring) */
    double *qt;
    uint64_t *qb;
    size_t qhead, qcap;
    uint32_t wake_epoch, to_epoch;
    size_t pathcap;
    uint64_t blocked, timed_out, routes;
} kagi__dm;

struct kagi_sim {
    const kagi_scenario *sc;
    kagi_sim_opts opts;
    double now, end, sample_s;
    uint64_t seed;
    size_t nn, nl, nd;
    uint8_t *up;             /* per node */
    uint8_t *trusted;        /* per node */
    uint64_t topo;           /* bumped by every event that changes a link or node */
    double warm;             /* every fibre link has delivered its first block */
    double *first_t;         /* when each fibre link delivers its first block,
                                sorted: a route found before one of them is
                                found again after it */
    size_t nfirst;
    uint32_t *adj_off, *adj, *adjn; /* CSR: links at each node, and their far ends */
    kagi__lk *lk;
    kagi__dm *dm;
    kagi__evq q;
    size_t next_event;       /* scenario events are queued one at a time */
    /* routing scratch */
    double *dist;
    uint32_t *hops, *prev, *seen, *ban, *lban;
    uint32_t stamp, banstamp;
    struct kagi__hn { double d; uint32_t h, n; } *rh;
    size_t rhn, rhcap;
    uint32_t *tmp_path;      /* nn + 1 links */
    /* A* for key-aware searches: per destination, every node's least hop
     * count to it over all links (a cost is at least 1 a hop), computed
     * once (route.c); slots up to a memory cap, then plain Dijkstra */
    uint16_t *hcache;        /* hslots x nn */
    uint32_t *hslot;         /* per node: its slot as a destination, or UINT32_MAX */
    size_t hslots, hslot_cap;
    uint32_t *bfsq;          /* nn */
    /* series */
    size_t ns, nsmax;
    double *st;
    uint64_t *s_link;        /* [sample][link][3] */
    uint32_t *s_dem;         /* [sample][demand][4] */
    /* satellite passes (passes.c) */
    kagi_sim_pass *pass;
    size_t npass;
    kagi_sc_window **pwin;   /* set-up only: each link's pass windows */
    size_t *npwin;
    /* log */
    kagi_sim_log *log;
    size_t nlog;
    /* totals */
    uint64_t events, retries; /* route computations: the demands' */
    double wall_last;
};

/* Every pass of every satellite link, their keys and windows (into
 * s->pass and s->pwin; passes.c). */
int kagi__passes_compute(kagi_sim *s);

/* Bring link l's pool up to time t (lazy production). */
void kagi__mat_slow(kagi_sim *s, kagi__lk *l, double t);
static inline void kagi__mat(kagi_sim *s, kagi__lk *l, double t)
{
    if (t >= l->next_due) kagi__mat_slow(s, l, t);
}
/* Time at which l, left alone, holds need bits (now if it does); INFINITY
 * if never. l must be materialised to s->now. */
double kagi__ready(const kagi_sim *s, const kagi__lk *l, uint64_t need);

/* Routing (route.c). Mode KAGI__KEY: a path whose every hop holds the key
 * it needs now, at least cost (1 + reserve * need / pool per hop); mode
 * KAGI__WHEN: the path that can serve soonest if nothing else draws
 * (minimax of kagi__ready). Up to k node-disjoint paths, found one after
 * another; returns how many were found, stores their links in out (at most
 * k * nn) and lengths in plen, and in *when the latest ready time (WHEN). */
enum { KAGI__KEY = 0, KAGI__WHEN = 1 };
/* Names in the JSON outputs (output.c), shared by the live feed (live.c). */
const char *kagi__event_name(kagi_sc_event_kind k);
const char *kagi__kind_name(kagi_sc_link_kind k);
int kagi__route_init(kagi_sim *s);
unsigned kagi__routes(kagi_sim *s, uint32_t src, uint32_t dst, uint64_t size, int mode,
                      unsigned k, uint32_t *out, uint32_t *plen, double *when);
/* Key a hop of a path of hops links must hold for size bits: size alone
 * for a one-hop path (no relay message), size + mac_bits otherwise. */
static inline uint64_t kagi__need(const kagi_sim *s, uint64_t size, uint32_t hops)
{
    return hops == 1 ? size : size + s->sc->mac_bits;
}

#endif
