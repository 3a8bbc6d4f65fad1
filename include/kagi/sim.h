/* kagi/sim.h: discrete-event simulation of a QKD network (docs/sim.md).
 *
 * Links fill key pools at the rate their model gives, in whole blocks; a
 * satellite fills the pool it shares with a ground station at the end of
 * each pass over it (or block of passes), with the key the free-space
 * model gives for the pass (kagi/freespace.h), and relays like any trusted
 * node; demands draw keys end to end, relayed hop by hop over trusted nodes
 * (one-time pad with each hop's link key plus a Wegman-Carter tag), over
 * routes that avoid cut links, down nodes and pools that cannot cover the
 * request; events cut links, stop nodes, put eavesdroppers on links and
 * repair them. Key material is never simulated bit by bit: only counts.
 *
 * Time is simulated seconds from 0. Events at the same instant run in the
 * order: scenario events, retries of waiting requests, time-outs, new
 * requests, samples; within one class in the order they were scheduled
 * (a sequence number), so a run is reproducible for a seed.
 *
 * Pools are computed lazily: a link's production is a known function of
 * time (whole blocks since it last came up), so the simulator only brings
 * a pool up to date when something reads or draws from it; events are
 * requests, retries, time-outs, scenario events and samples. */
#ifndef KAGI_SIM_H
#define KAGI_SIM_H

#include <stddef.h>
#include <stdint.h>

#include "kagi/bits.h"
#include "kagi/scenario.h"

typedef struct kagi_sim kagi_sim;

/* Extra windows of a scheduled link, asked once for each
 * KAGI_SC_LINK_SCHEDULED link when the simulation is set up, for [t0_s,
 * t1_s] (the whole run). Fill *out with count windows (malloc'd; the
 * simulator takes and frees them), sorted by t0_s and not overlapping.
 * They are merged with the windows the scenario lists for that link and,
 * for a satellite link, with those of its passes (which the simulator
 * computes itself, below); all must stay apart. Return KAGI_OK or an
 * error code (the detail says why); the simulation is then not created. */
typedef int (*kagi_sim_window_fn)(void *ctx, const kagi_scenario *sc, size_t link,
                                  double t0_s, double t1_s, kagi_sc_window **out,
                                  size_t *count);

typedef struct kagi_sim_opts {
    double until_s;            /* > 0: simulate this long instead of the
                                  scenario's duration */
    int has_seed;              /* 1: seed replaces the scenario's seed */
    uint64_t seed;
    kagi_sim_window_fn windows; /* may be NULL */
    void *windows_ctx;
    /* Called at most ten times a second of wall time while running, and
     * once at the end; may be NULL. */
    void (*progress)(void *ctx, double now_s, double end_s);
    void *progress_ctx;
    int check_each_sample;     /* 1: kagi_sim_check at every sample (tests) */
} kagi_sim_opts;

/* Set up a simulation of sc, which must have passed kagi_scenario_check
 * (kagi_scenario_load does it; it is validated again here, unchanged) and
 * must outlive the simulation without changing. Computes every link's rate
 * once: KAGI_ERR_ARG if a model rejects its parameters. Computes every pass
 * of every satellite over every ground station in the run (kagi_passes
 * from start_utc, above the station's minimum elevation) and its key
 * (kagi_fso_pass_run at the satellite's step with kagi_sc_pair_link's
 * link; with passes_per_block > 1 the counts of that many consecutive used
 * passes make one block, kagi_fso_key_of); a satellite link gets one
 * window per pass, [AOS, LOS), or per complete block, [first AOS, last
 * LOS), carrying that key. KAGI_ERR_ARG when SGP4 fails in the run (the
 * detail names the satellite). opts may be NULL (all zero). *out is freed
 * with kagi_sim_free. */
int kagi_sim_new(const kagi_scenario *sc, const kagi_sim_opts *opts, kagi_sim **out)
    KAGI_NODISCARD KAGI_NONNULL(1, 3);
void kagi_sim_free(kagi_sim *s);

/* Run every event up to and including t_s (at most the end); pools are
 * then up to date at t_s. kagi_sim_run runs to the end and then checks the
 * invariants (kagi_sim_check). */
int kagi_sim_run_until(kagi_sim *s, double t_s) KAGI_NODISCARD KAGI_NONNULL(1);
int kagi_sim_run(kagi_sim *s) KAGI_NODISCARD KAGI_NONNULL(1);

/* The invariants, at the current time: every pool within [0, capacity],
 * each node's pools within its key store; per link consumed <= stored <=
 * generated, generated = stored + discarded, pool = stored - consumed,
 * consumed = relayed payload + mac_bits per relay message + direct keys;
 * a scheduled (satellite) link generated no more than its windows that
 * have ended carried, so no key of a pass exists before its LOS;
 * all links together consumed exactly what the demands drew; per demand
 * requests = served + blocked + timed out + waiting. KAGI_ERR_VERIFY
 * naming the first that fails. */
int kagi_sim_check(const kagi_sim *s) KAGI_NODISCARD KAGI_NONNULL(1);

enum { KAGI_SIM_UP = 0, KAGI_SIM_CUT, KAGI_SIM_EAVESDROPPED, KAGI_SIM_NODE_DOWN };

typedef struct kagi_sim_link_stats {
    double length_km;
    double rate_bps;          /* the model's (or fixed) key rate */
    double qber;              /* the model's, or the eavesdropper's */
    uint64_t block_bits;      /* bits per delivery */
    double block_s;           /* seconds per delivery */
    uint64_t pool_capacity_bits;
    int state;                /* KAGI_SIM_UP, ... */
    uint64_t generated_bits;  /* distilled by the link */
    uint64_t stored_bits;     /* of which the pool had room for */
    uint64_t discarded_bits;  /* of which it had not (pool full) */
    uint64_t consumed_bits;   /* drawn by relay hops and direct keys */
    uint64_t pool_bits;       /* stored - consumed */
    uint64_t relay_messages;  /* hop messages: payload + mac_bits each */
    uint64_t relay_payload_bits;
    uint64_t direct_keys;     /* one-hop keys (no relay message) */
    uint64_t direct_bits;
} kagi_sim_link_stats;

typedef struct kagi_sim_demand_stats {
    uint64_t requests, served, blocked, timed_out, waiting;
    uint64_t served_bits;     /* key delivered to the application */
    uint64_t drawn_bits;      /* link key consumed for it, all hops */
    uint64_t hop_messages;    /* relay hop messages sent for it */
    double wait_total_s;      /* summed over served requests */
    double wait_max_s;
    uint64_t routes;          /* route computations for it */
} kagi_sim_demand_stats;

typedef struct kagi_sim_totals {
    double now_s, end_s;
    uint64_t seed;
    uint64_t events;          /* events taken from the queue */
    uint64_t requests, served, blocked, timed_out, waiting;
    uint64_t generated_bits, consumed_bits, discarded_bits;
    uint64_t blocks;          /* key deliveries accounted (lazily) */
    uint64_t routes;          /* key-aware route computations */
    uint64_t retries;         /* retries of waiting requests */
    /* satellite passes in the run (kagi_sim_passes) */
    uint64_t passes;          /* all, over every (satellite, station) pair */
    uint64_t passes_night;    /* wholly at night */
    uint64_t passes_used;     /* whose counts went into a key block */
    uint64_t passes_with_key; /* used, and giving key as a block of their own */
    uint64_t pass_key_bits;   /* the key every window carries, summed (what
                                 the satellite links would generate if no
                                 event stopped them) */
} kagi_sim_totals;

const kagi_scenario *kagi_sim_scenario(const kagi_sim *s) KAGI_NONNULL(1);
double kagi_sim_now(const kagi_sim *s) KAGI_NONNULL(1);
/* Figures of link i (demand i) at the current time. */
void kagi_sim_link(const kagi_sim *s, size_t i, kagi_sim_link_stats *out) KAGI_NONNULL(1, 3);
void kagi_sim_demand(const kagi_sim *s, size_t i, kagi_sim_demand_stats *out) KAGI_NONNULL(1, 3);
void kagi_sim_get_totals(const kagi_sim *s, kagi_sim_totals *out) KAGI_NONNULL(1, 2);
/* 1 when node i is up. */
int kagi_sim_node_up(const kagi_sim *s, size_t i) KAGI_NONNULL(1);

/* The path the simulator would relay a key of size_bits over from node src
 * to node dst, at the current time, if nothing else drew key: the route
 * that can serve soonest (the latest of its hops' ready times, least;
 * fewer hops on a tie), over links that are up and give key, relaying only
 * through trusted nodes. At time 0 it follows from the links' rates. Its
 * nodes, src first and dst last, into nodes[0..*n) (max at least the
 * node count is always enough). KAGI_ERR_NOKEY when no path exists
 * (*n = 0); KAGI_ERR_ARG for a node out of range, src == dst, or a path
 * longer than max. Changes no pool or figure of the simulation. */
int kagi_sim_route(kagi_sim *s, size_t src, size_t dst, uint64_t size_bits, size_t *nodes,
                   size_t max, size_t *n) KAGI_NODISCARD KAGI_NONNULL(1, 5, 7);

/* Time series, sampled every sample_s from 0 (and at the end). */
enum {
    KAGI_SIM_POOL = 0, KAGI_SIM_GENERATED, KAGI_SIM_CONSUMED, /* per link, bits */
    KAGI_SIM_SERVED = 0, KAGI_SIM_BLOCKED, KAGI_SIM_TIMED_OUT, KAGI_SIM_WAITING /* per demand */
};
size_t kagi_sim_samples(const kagi_sim *s) KAGI_NONNULL(1);
double kagi_sim_sample_time(const kagi_sim *s, size_t k) KAGI_NONNULL(1);
uint64_t kagi_sim_link_sample(const kagi_sim *s, size_t k, size_t link, int what) KAGI_NONNULL(1);
uint64_t kagi_sim_demand_sample(const kagi_sim *s, size_t k, size_t demand, int what)
    KAGI_NONNULL(1);

/* ---- Satellite passes ------------------------------------------------- */

typedef enum kagi_sim_light {
    KAGI_SIM_NIGHT = 0, /* the Sun below -18 degrees at every sample */
    KAGI_SIM_TWILIGHT,  /* not night, the Sun below 0 at some sample */
    KAGI_SIM_DAY,       /* the Sun above the horizon throughout */
} kagi_sim_light;

/* One pass of a satellite over a ground station. Simulated seconds:
 * UTC = start_utc + seconds. */
typedef struct kagi_sim_pass {
    size_t link;             /* the satellite link */
    size_t sat, gs;          /* indices in satellites[] and stations[] */
    double aos_s, tca_s, los_s;
    double max_el_deg;
    kagi_sim_light light;    /* from the model's samples; for a pass that
                                night_only left out unmodelled, from AOS,
                                TCA and LOS */
    int used;                /* its counts go into a key block: 0 when
                                night_only leaves it out or the run ends
                                during it (its key would come after) */
    uint32_t block;          /* its block on this link, from 1; 0 if unused */
    uint64_t pass_key_bits;  /* the pass alone as a finite-key block (0 if
                                not modelled) */
    uint64_t key_bits;       /* what its window carries at its LOS: the key
                                of the block it completes, else 0 (a block
                                the run ends before completing gives none) */
} kagi_sim_pass;

/* Every pass, grouped by link in link order, each link's in time order.
 * The simulation owns *out. */
size_t kagi_sim_passes(const kagi_sim *s, const kagi_sim_pass **out) KAGI_NONNULL(1, 2);
/* The windows of scheduled link i as simulated (the scenario's, the
 * passes' and the callback's, merged); 0 for other links. */
size_t kagi_sim_link_windows(const kagi_sim *s, size_t i, const kagi_sc_window **out)
    KAGI_NONNULL(1, 3);

/* Log of what happened, for reports: scenario events as applied. */
typedef struct kagi_sim_log {
    double at_s;
    kagi_sc_event_kind kind;
    size_t target;
} kagi_sim_log;
size_t kagi_sim_events_applied(const kagi_sim *s, const kagi_sim_log **out) KAGI_NONNULL(1, 2);

/* Outputs into dir (created if missing, parents too): metrics.json,
 * links.csv, demands.csv, passes.csv and report.html (docs/sim.md), each
 * written to a
 * temporary file, synced and renamed, so a file is either absent or whole.
 * KAGI_ERR_IO naming the path. metrics.json holds no wall-clock figure:
 * the same scenario and seed give the same bytes. */
int kagi_sim_write(const kagi_sim *s, const char *dir) KAGI_NODISCARD KAGI_NONNULL(1, 2);
int kagi_sim_write_metrics(const kagi_sim *s, const char *path) KAGI_NODISCARD KAGI_NONNULL(1, 2);

#endif
