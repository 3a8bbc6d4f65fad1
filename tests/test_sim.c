/* Tests of the network simulator (kagi/sim.h, kagi/scenario.h). Oracles:
 * counts worked out by hand for small networks of fixed-rate links (which
 * requests are served, blocked, time out; exactly how many bits each hop
 * gives), kagi_keyrate's own rate and block size for model links, byte
 * equality of metrics.json for a repeated seed, and the invariants of
 * kagi_sim_check after every sample of every run. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kagi/error.h"
#include "kagi/keyrate.h"
#include "kagi/scenario.h"
#include "kagi/sim.h"
#include "t.h"

static kagi_scenario *load(const char *yaml)
{
    kagi_scenario *sc = NULL;
    int rc = kagi_scenario_parse(yaml, strlen(yaml), "t.yaml", &sc);
    if (rc != KAGI_OK) T_FAIL("scenario did not load: %s", kagi_errdetail());
    return sc;
}

/* Run to the end with the invariants checked at every sample. */
static kagi_sim *run(const kagi_scenario *sc, const kagi_sim_opts *o)
{
    kagi_sim_opts opts;
    memset(&opts, 0, sizeof opts);
    if (o) opts = *o;
    opts.check_each_sample = 1;
    kagi_sim *s = NULL;
    if (!sc || kagi_sim_new(sc, &opts, &s) != KAGI_OK) {
        T_FAIL("kagi_sim_new: %s", kagi_errdetail());
        return NULL;
    }
    int rc = kagi_sim_run(s);
    if (rc != KAGI_OK) T_FAIL("kagi_sim_run: %s", kagi_errdetail());
    return s;
}

static kagi_sim_link_stats link_of(const kagi_sim *s, const char *name)
{
    kagi_sim_link_stats ls;
    long i = kagi_scenario_link(kagi_sim_scenario(s), name);
    if (i < 0) T_FAIL("no link %s", name);
    kagi_sim_link(s, i < 0 ? 0 : (size_t)i, &ls);
    return ls;
}

static kagi_sim_demand_stats demand0(const kagi_sim *s)
{
    kagi_sim_demand_stats d;
    kagi_sim_demand(s, 0, &d);
    return d;
}

/* Two routes from A to D: A-B-D (2 hops) and A-C-E-D (3 hops), every
 * link 10 kbit/s in 10 kbit blocks (one a second). Ten requests of 1000
 * bits at 10, 20, ..., 100 s. A relay hop costs 1000 + 256 bits. */
#define NET5                                                                                  \
    "duration: 100s\nsample: 10s\nmac_bits: 256\nroute_reserve: 0\n"                          \
    "nodes:\n"                                                                                \
    "  - {name: A, lat: 35.0, lon: 139.0}\n  - {name: B, lat: 35.1, lon: 139.1}\n"            \
    "  - {name: C, lat: 34.9, lon: 139.1}\n  - {name: E, lat: 34.9, lon: 139.2}\n"            \
    "  - {name: D, lat: 35.0, lon: 139.3}\n"                                                  \
    "links:\n"                                                                                \
    "  - {name: ab, ends: [A, B], key_rate: 10000, block_bits: 10000}\n"                      \
    "  - {name: bd, ends: [B, D], key_rate: 10000, block_bits: 10000}\n"                      \
    "  - {name: ac, ends: [A, C], key_rate: 10000, block_bits: 10000}\n"                      \
    "  - {name: ce, ends: [C, E], key_rate: 10000, block_bits: 10000}\n"                      \
    "  - {name: ed, ends: [E, D], key_rate: 10000, block_bits: 10000}\n"
#define REQ10 "    schedule: [{at: 10s, bits: 1000, count: 10, every: 10s}]\n"

static void test_cut_link_traffic_reroutes_to_the_other_path(void)
{
    kagi_scenario *sc = load(NET5 "demands:\n  - name: ad\n    from: A\n    to: D\n" REQ10
                                  "    policy: block\nevents:\n  - {at: 45s, cut: ab}\n");
    kagi_sim *s = run(sc, NULL);
    if (!s) return;
    kagi_sim_demand_stats d = demand0(s);
    ASSERT_EQ(d.requests, 10);
    ASSERT_EQ(d.served, 10);
    ASSERT_EQ(d.blocked, 0);
    /* 4 requests (10..40 s) over A-B-D, 6 (50..100 s) over A-C-E-D */
    ASSERT_EQ(link_of(s, "ab").consumed_bits, 4 * 1256);
    ASSERT_EQ(link_of(s, "bd").consumed_bits, 4 * 1256);
    ASSERT_EQ(link_of(s, "ac").consumed_bits, 6 * 1256);
    ASSERT_EQ(link_of(s, "ce").consumed_bits, 6 * 1256);
    ASSERT_EQ(link_of(s, "ed").consumed_bits, 6 * 1256);
    ASSERT_EQ(link_of(s, "ab").state, KAGI_SIM_CUT);
    /* a cut link makes no more key: 45 blocks of 10 kbit before the cut */
    ASSERT_EQ(link_of(s, "ab").generated_bits, 45 * 10000);
    ASSERT_EQ(d.drawn_bits, 4 * 2 * 1256 + 6 * 3 * 1256);
    ASSERT_EQ(d.hop_messages, 4 * 2 + 6 * 3);
    kagi_sim_free(s);
    kagi_scenario_free(sc);
}

static void test_cut_with_no_other_path_blocks(void)
{
    kagi_scenario *sc = load(NET5 "demands:\n  - name: ad\n    from: A\n    to: D\n" REQ10
                                  "    policy: block\nevents:\n  - {at: 45s, cut: ab}\n"
                                  "  - {at: 45s, cut: [C, E]}\n");
    kagi_sim *s = run(sc, NULL);
    if (!s) return;
    kagi_sim_demand_stats d = demand0(s);
    ASSERT_EQ(d.served, 4);
    ASSERT_EQ(d.blocked, 6);
    ASSERT_EQ(d.waiting, 0);
    ASSERT_EQ(link_of(s, "ac").consumed_bits, 0);
    ASSERT_EQ(link_of(s, "ab").consumed_bits, 4 * 1256);
    kagi_sim_free(s);
    kagi_scenario_free(sc);
}

static void test_waiting_requests_are_served_at_the_repair(void)
{
    kagi_scenario *sc = load(NET5 "demands:\n  - name: ad\n    from: A\n    to: D\n" REQ10
                                  "    policy: wait\n    timeout: 1000s\n"
                                  "events:\n  - {at: 45s, cut: ab}\n  - {at: 45s, cut: ce}\n"
                                  "  - {at: 75s, repair: ab}\n");
    kagi_sim *s = run(sc, NULL);
    if (!s) return;
    kagi_sim_demand_stats d = demand0(s);
    ASSERT_EQ(d.served, 10);
    ASSERT_EQ(d.blocked + d.timed_out + d.waiting, 0);
    /* 50, 60 and 70 s waited until 75 s */
    ASSERT_NEAR(d.wait_total_s, 25 + 15 + 5, 1e-9);
    ASSERT_NEAR(d.wait_max_s, 25, 1e-9);
    ASSERT_EQ(link_of(s, "ab").consumed_bits, 10 * 1256);
    ASSERT_EQ(link_of(s, "ac").consumed_bits, 0);
    kagi_sim_free(s);
    kagi_scenario_free(sc);
}

static void test_waiting_requests_time_out_in_fifo_order(void)
{
    kagi_scenario *sc = load(NET5 "demands:\n  - name: ad\n    from: A\n    to: D\n" REQ10
                                  "    policy: wait\n    timeout: 20s\n"
                                  "events:\n  - {at: 45s, cut: ab}\n  - {at: 45s, cut: ce}\n");
    kagi_sim *s = run(sc, NULL);
    if (!s) return;
    kagi_sim_demand_stats d = demand0(s);
    /* 50, 60, 70, 80 s time out at 70, 80, 90, 100 s; 90 and 100 s still wait */
    ASSERT_EQ(d.served, 4);
    ASSERT_EQ(d.timed_out, 4);
    ASSERT_EQ(d.waiting, 2);
    ASSERT_EQ(d.blocked, 0);
    kagi_sim_free(s);
    kagi_scenario_free(sc);
}

/* A-B-C in a line: a relayed key A>C pays size + MAC on both hops; a
 * direct key A>B pays its size only. */
static void test_relayed_key_costs_size_plus_mac_on_every_hop(void)
{
    kagi_scenario *sc = load(
        "duration: 60s\nmac_bits: 256\nnodes:\n"
        "  - {name: A, lat: 35.0, lon: 139.0}\n  - {name: B, lat: 35.1, lon: 139.1}\n"
        "  - {name: C, lat: 35.2, lon: 139.2}\n"
        "links:\n  - {name: ab, ends: [A, B], key_rate: 10000}\n"
        "  - {name: bc, ends: [B, C], key_rate: 10000}\n"
        "demands:\n  - {name: ac, from: A, to: C, schedule: [{at: 10s, bits: 300, count: 5, "
        "every: 10s}]}\n"
        "  - {name: ab-direct, from: A, to: B, schedule: [{at: 10s, bits: 300, count: 5, "
        "every: 10s}]}\n");
    kagi_sim *s = run(sc, NULL);
    if (!s) return;
    kagi_sim_link_stats ab = link_of(s, "ab"), bc = link_of(s, "bc");
    ASSERT_EQ(ab.relay_messages, 5);
    ASSERT_EQ(ab.relay_payload_bits, 5 * 300);
    ASSERT_EQ(ab.direct_keys, 5);
    ASSERT_EQ(ab.direct_bits, 5 * 300);
    ASSERT_EQ(ab.consumed_bits, 5 * (300 + 256) + 5 * 300);
    ASSERT_EQ(bc.consumed_bits, 5 * (300 + 256));
    ASSERT_EQ(bc.direct_keys, 0);
    kagi_sim_demand_stats d;
    kagi_sim_demand(s, 0, &d);
    ASSERT_EQ(d.served, 5);
    ASSERT_EQ(d.drawn_bits, 2 * 5 * (300 + 256));
    kagi_sim_demand(s, 1, &d);
    ASSERT_EQ(d.drawn_bits, 5 * 300);
    ASSERT_EQ(d.hop_messages, 0);
    kagi_sim_free(s);
    kagi_scenario_free(sc);
}

/* Diamond A-B-D, A-C-D: a key split in two XOR shares takes both routes
 * (each share its size + MAC on each hop); three shares cannot be routed
 * disjointly and are blocked. An untrusted relay is never used. */
#define DIAMOND(extra_nodes, extra_links)                                                     \
    "duration: 60s\nmac_bits: 256\nnodes:\n"                                                  \
    "  - {name: A, lat: 35.0, lon: 139.0}\n  - {name: B, lat: 35.1, lon: 139.1}\n"            \
    "  - {name: C, lat: 34.9, lon: 139.1}\n  - {name: D, lat: 35.0, lon: 139.2}\n" extra_nodes \
    "links:\n  - {name: ab, ends: [A, B], key_rate: 10000}\n"                                 \
    "  - {name: bd, ends: [B, D], key_rate: 10000}\n"                                         \
    "  - {name: ac, ends: [A, C], key_rate: 10000}\n"                                         \
    "  - {name: cd, ends: [C, D], key_rate: 10000}\n" extra_links

static void test_split_key_takes_node_disjoint_paths(void)
{
    kagi_scenario *sc = load(DIAMOND("", "") "demands:\n  - {name: ad, from: A, to: D, split: 2, "
                                             "schedule: [{at: 10s, bits: 512, count: 5, every: "
                                             "10s}], policy: block}\n"
                                             "  - {name: ad3, from: A, to: D, split: 3, "
                                             "schedule: [{at: 15s, bits: 512, count: 3, every: "
                                             "10s}], policy: block}\n");
    kagi_sim *s = run(sc, NULL);
    if (!s) return;
    kagi_sim_demand_stats d;
    kagi_sim_demand(s, 0, &d);
    ASSERT_EQ(d.served, 5);
    static const char *const names[] = {"ab", "bd", "ac", "cd"};
    for (int i = 0; i < 4; i++) {
        ASSERT_EQ(link_of(s, names[i]).consumed_bits, 5 * (512 + 256));
        ASSERT_EQ(link_of(s, names[i]).relay_messages, 5);
    }
    kagi_sim_demand(s, 1, &d);
    ASSERT_EQ(d.served, 0);
    ASSERT_EQ(d.blocked, 3);
    ASSERT_EQ(d.drawn_bits, 0);
    kagi_sim_free(s);
    kagi_scenario_free(sc);
}

static void test_untrusted_node_never_relays(void)
{
    /* B is untrusted: A>D must take A-C-D even though A-B-D is as short;
     * a key to B itself is fine (B is an end, not a relay). */
    char yaml[4096];
    snprintf(yaml, sizeof yaml, "%s",
             DIAMOND("", "") "demands:\n"
             "  - {name: ad, from: A, to: D, schedule: [{at: 10s, bits: 100, count: 4, every: "
             "10s}]}\n"
             "  - {name: ab, from: A, to: B, schedule: [{at: 10s, bits: 100, count: 2, every: "
             "10s}]}\n");
    char *p = strstr(yaml, "{name: B, lat: 35.1, lon: 139.1}");
    memcpy(p, "{name: B, lat: 35.1, lon: 139.1,", 32);
    memmove(p + 32 + 15, p + 32, strlen(p + 32) + 1);
    memcpy(p + 32, " trusted: no}  ", 15);
    kagi_scenario *sc = load(yaml);
    kagi_sim *s = run(sc, NULL);
    if (!s) return;
    ASSERT_EQ(link_of(s, "bd").consumed_bits, 0);
    ASSERT_EQ(link_of(s, "ac").consumed_bits, 4 * (100 + 256));
    ASSERT_EQ(link_of(s, "cd").consumed_bits, 4 * (100 + 256));
    ASSERT_EQ(link_of(s, "ab").consumed_bits, 2 * 100);
    ASSERT_EQ(demand0(s).served, 4);
    kagi_sim_free(s);
    kagi_scenario_free(sc);
}

static void test_node_down_stops_relay_and_its_links(void)
{
    kagi_scenario *sc = load(NET5 "demands:\n  - name: ad\n    from: A\n    to: D\n" REQ10
                                  "    policy: block\n"
                                  "events:\n  - {at: 45s, node_down: B}\n  - {at: 45s, node_down: C}\n"
                                  "  - {at: 65s, node_up: B}\n");
    kagi_sim *s = run(sc, NULL);
    if (!s) return;
    kagi_sim_demand_stats d = demand0(s);
    /* 50 and 60 s find no route; from 70 s A-B-D is back */
    ASSERT_EQ(d.served, 8);
    ASSERT_EQ(d.blocked, 2);
    /* B was down 45..65 s: 45 blocks before, 35 after (the block under way is lost) */
    ASSERT_EQ(link_of(s, "ab").generated_bits, (45 + 35) * 10000);
    ASSERT_EQ(link_of(s, "ac").state, KAGI_SIM_NODE_DOWN);
    ASSERT_TRUE(!kagi_sim_node_up(s, 2));
    kagi_sim_free(s);
    kagi_scenario_free(sc);
}

/* A-C is direct but its first block lands at 2 s, A-B and B-C at 1 s: the
 * requests at 1 and 1.5 s go via B; from 2 s the route is looked for again
 * and the direct link takes them (the first route found does not stick). */
static void test_route_found_before_a_first_block_is_looked_for_again(void)
{
    kagi_scenario *sc = load(
        "duration: 10s\nnodes:\n  - {name: A, lat: 35.0, lon: 139.0}\n"
        "  - {name: B, lat: 35.1, lon: 139.1}\n  - {name: C, lat: 35.0, lon: 139.2}\n"
        "links:\n  - {name: ab, ends: [A, B], key_rate: 1 Mbit/s, block_bits: 1 Mbit}\n"
        "  - {name: bc, ends: [B, C], key_rate: 1 Mbit/s, block_bits: 1 Mbit}\n"
        "  - {name: ac, ends: [A, C], key_rate: 1 Mbit/s, block_bits: 2 Mbit}\n"
        "demands:\n  - {name: ac, from: A, to: C, policy: block, schedule: [{at: 500ms, "
        "bits: 100, count: 20, every: 500ms}]}\n");
    kagi_sim *s = run(sc, NULL);
    if (!s) return;
    kagi_sim_demand_stats d = demand0(s);
    ASSERT_EQ(d.blocked, 1); /* 0.5 s: no key anywhere yet */
    ASSERT_EQ(d.served, 19);
    ASSERT_EQ(link_of(s, "ab").relay_messages, 2);
    ASSERT_EQ(link_of(s, "bc").relay_messages, 2);
    ASSERT_EQ(link_of(s, "ac").direct_keys, 17);
    kagi_sim_free(s);
    kagi_scenario_free(sc);
}

/* ---- Model links: kagi_keyrate's rate, in whole blocks ------------------- */

#define ONE_LINK(extra)                                                                       \
    "duration: 1h\nsample: 1m\nnodes:\n"                                                      \
    "  - {name: A, lat: 35.0, lon: 139.0}\n  - {name: B, lat: 35.2, lon: 139.2}\n"            \
    "links:\n  - {name: ab, ends: [A, B], length_km: 30, block: 1e6, fiber_loss: 0.2}\n" extra

static void test_model_link_rate_equals_keyrate_in_whole_blocks(void)
{
    kagi_scenario *sc = load(ONE_LINK(""));
    kagi_sim *s = run(sc, NULL);
    if (!s) return;
    kagi_link l;
    kagi_link_defaults(&l);
    l.distance_km = 30;
    kagi_rate r;
    ASSERT_OK(kagi_keyrate(KAGI_PROTO_BB84_DECOY, KAGI_DECOYS_TWO, &l, 1e6, &r));
    kagi_sim_link_stats ls = link_of(s, "ab");
    ASSERT_TRUE(r.bps > 0);
    ASSERT_NEAR(ls.rate_bps, r.bps, 0);
    ASSERT_EQ(ls.block_bits, (uint64_t)nearbyint(r.per_pulse * r.block_pulses));
    ASSERT_NEAR(ls.block_s, (double)ls.block_bits / r.bps, 1e-12 * ls.block_s);
    /* the block takes block_pulses pulses at the clock (no dead time) */
    ASSERT_NEAR(ls.block_s, r.block_pulses / l.clock_hz, 1e-6 * ls.block_s);
    ASSERT_EQ(kagi_sim_samples(s), 61);
    for (size_t k = 0; k < kagi_sim_samples(s); k++) {
        double t = kagi_sim_sample_time(s, k);
        uint64_t g = kagi_sim_link_sample(s, k, 0, KAGI_SIM_GENERATED);
        /* whole blocks only, one per block_s, none early */
        ASSERT_EQ(g % ls.block_bits, 0);
        ASSERT_EQ(g / ls.block_bits, (uint64_t)floor(t / ls.block_s + 1e-9));
        ASSERT_TRUE((double)g <= r.bps * t + 1e-6 && r.bps * t - (double)g < (double)ls.block_bits);
    }
    kagi_sim_free(s);
    kagi_scenario_free(sc);
}

static void test_eavesdropped_link_stops_producing_from_that_moment(void)
{
    kagi_scenario *sc = load(ONE_LINK("demands:\n  - {name: late, from: A, to: B, schedule: "
                                      "[{at: 40m, bits: 1000}]}\n"
                                      "events:\n  - {at: 30m, eavesdrop: ab, qber: 0.3}\n"
                                      "  - {at: 50m, repair: ab}\n"));
    kagi_sim *s = run(sc, NULL);
    if (!s) return;
    kagi_sim_link_stats ls = link_of(s, "ab");
    double T = ls.block_s;
    uint64_t B = ls.block_bits, at_eve = (uint64_t)floor(1800 / T + 1e-9) * B;
    for (size_t k = 0; k < kagi_sim_samples(s); k++) {
        double t = kagi_sim_sample_time(s, k);
        uint64_t g = kagi_sim_link_sample(s, k, 0, KAGI_SIM_GENERATED);
        if (t >= 1800 && t < 3000) ASSERT_EQ(g, at_eve); /* constant while observed */
        if (t >= 3000) /* from the repair, blocks start again from zero */
            ASSERT_EQ(g, at_eve + (uint64_t)floor((t - 3000) / T + 1e-9) * B);
    }
    /* key distilled before the eavesdropper is still good: the request at
     * 40 min is served from the pool */
    ASSERT_EQ(demand0(s).served, 1);
    ASSERT_EQ(ls.state, KAGI_SIM_UP);
    kagi_sim_free(s);
    /* while the eavesdropper is there its QBER shows */
    kagi_sim_opts o;
    memset(&o, 0, sizeof o);
    ASSERT_OK(kagi_sim_new(sc, &o, &s));
    ASSERT_OK(kagi_sim_run_until(s, 2400));
    ls = link_of(s, "ab");
    ASSERT_EQ(ls.state, KAGI_SIM_EAVESDROPPED);
    ASSERT_NEAR(ls.qber, 0.3, 0);
    ASSERT_EQ(ls.generated_bits, at_eve);
    kagi_sim_free(s);
    kagi_scenario_free(sc);
}

static void test_pool_is_capped_and_overflow_discarded(void)
{
    kagi_scenario *sc = load("duration: 10s\nsample: 1s\nnodes:\n"
                             "  - {name: A, lat: 35.0, lon: 139.0, capacity: 8000}\n"
                             "  - {name: B, lat: 35.1, lon: 139.1}\n"
                             "links:\n  - {name: ab, ends: [A, B], key_rate: 1000, block_bits: "
                             "1000, pool_bits: 5000}\n");
    kagi_sim *s = run(sc, NULL);
    if (!s) return;
    kagi_sim_link_stats ls = link_of(s, "ab");
    ASSERT_EQ(ls.generated_bits, 10000);
    ASSERT_EQ(ls.pool_bits, 5000);
    ASSERT_EQ(ls.discarded_bits, 5000);
    ASSERT_EQ(ls.pool_capacity_bits, 5000);
    for (size_t k = 0; k < kagi_sim_samples(s); k++)
        ASSERT_TRUE(kagi_sim_link_sample(s, k, 0, KAGI_SIM_POOL) <= 5000);
    kagi_sim_free(s);
    kagi_scenario_free(sc);
    /* without pool_bits a link gets an even share of the smaller store */
    sc = load("duration: 10s\nnodes:\n  - {name: A, lat: 35.0, lon: 139.0, capacity: 8000}\n"
              "  - {name: B, lat: 35.1, lon: 139.1}\n  - {name: C, lat: 35.2, lon: 139.2}\n"
              "links:\n  - {name: ab, ends: [A, B], key_rate: 1000}\n"
              "  - {name: ac, ends: [A, C], key_rate: 1000}\n");
    s = run(sc, NULL);
    if (!s) return;
    ASSERT_EQ(link_of(s, "ab").pool_capacity_bits, 4000);
    ASSERT_EQ(link_of(s, "ab").pool_bits, 4000);
    kagi_sim_free(s);
    kagi_scenario_free(sc);
}

/* ---- The satellite seam: scheduled windows ------------------------------- */

static int windows_cb(void *ctx, const kagi_scenario *sc, size_t link, double t0, double t1,
                      kagi_sc_window **out, size_t *count)
{
    int *calls = ctx;
    (*calls)++;
    *out = NULL;
    *count = 0;
    if (strcmp(sc->links[link].name, "sat-g2") || t0 != 0 || t1 != 1000) return KAGI_OK;
    *out = malloc(sizeof **out);
    if (!*out) return KAGI_ERR_NOMEM;
    (*out)[0] = (kagi_sc_window){300, 400, 10000};
    *count = 1;
    return KAGI_OK;
}

static void test_relay_over_windowed_links_waits_for_both_passes(void)
{
    kagi_scenario *sc = load(
        "duration: 1000s\nsample: 50s\nnodes:\n"
        "  - {name: G1, lat: 35.0, lon: 139.0}\n  - {name: SAT, lat: 40.0, lon: 100.0}\n"
        "  - {name: G2, lat: 48.0, lon: 11.0}\n"
        "links:\n  - {name: g1-sat, ends: [G1, SAT], windows: [{from: 100s, to: 200s, bits: "
        "10000}]}\n"
        "  - {name: sat-g2, ends: [SAT, G2], windows: []}\n"
        "demands:\n  - {name: g1-g2, from: G1, to: G2, schedule: [{at: 50s, bits: 1000}], "
        "timeout: never}\n");
    int calls = 0;
    kagi_sim_opts o;
    memset(&o, 0, sizeof o);
    o.windows = windows_cb;
    o.windows_ctx = &calls;
    kagi_sim *s = NULL;
    ASSERT_OK(kagi_sim_new(sc, &o, &s));
    if (!s) return;
    ASSERT_EQ(calls, 2);
    ASSERT_OK(kagi_sim_run_until(s, 399.999));
    kagi_sim_demand_stats d = demand0(s);
    ASSERT_EQ(d.waiting, 1); /* the first pass alone is not enough */
    ASSERT_EQ(link_of(s, "g1-sat").pool_bits, 10000);
    ASSERT_EQ(link_of(s, "sat-g2").pool_bits, 0);
    ASSERT_OK(kagi_sim_run(s));
    d = demand0(s);
    ASSERT_EQ(d.served, 1);
    ASSERT_NEAR(d.wait_max_s, 350, 1e-9); /* served at the end of the second pass */
    ASSERT_EQ(link_of(s, "g1-sat").consumed_bits, 1256);
    ASSERT_EQ(link_of(s, "sat-g2").consumed_bits, 1256);
    kagi_sim_free(s);
    kagi_scenario_free(sc);
}

/* ---- Reproducibility and outputs ----------------------------------------- */

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *b = malloc(1 << 22);
    *len = b ? fread(b, 1, 1 << 22, f) : 0;
    fclose(f);
    return b;
}

static void test_same_seed_gives_identical_metrics(void)
{
    const char *y = NET5 "demands:\n  - {name: ad, from: A, to: D, rate: 200, key_size: 100, "
                         "arrivals: poisson, timeout: 3s}\n"
                         "  - {name: ce, from: C, to: E, rate: 3000, key_size: 500, arrivals: "
                         "poisson}\nevents:\n  - {at: 45s, cut: ab}\n";
    kagi_scenario *sc = load(y);
    char dir[] = "/tmp/kagi-sim-test.XXXXXX";
    if (!mkdtemp(dir)) {
        T_FAIL("mkdtemp");
        return;
    }
    char p[3][128];
    uint64_t seeds[3] = {5, 5, 6};
    for (int i = 0; i < 3; i++) {
        kagi_sim_opts o;
        memset(&o, 0, sizeof o);
        o.has_seed = 1;
        o.seed = seeds[i];
        kagi_sim *s = run(sc, &o);
        if (!s) return;
        snprintf(p[i], sizeof p[i], "%s/m%d.json", dir, i);
        ASSERT_OK(kagi_sim_write_metrics(s, p[i]));
        kagi_sim_free(s);
    }
    size_t l0, l1, l2;
    char *a = slurp(p[0], &l0), *b = slurp(p[1], &l1), *c = slurp(p[2], &l2);
    ASSERT_TRUE(a && b && c);
    if (a && b && c) {
        ASSERT_TRUE(l0 > 1000 && l0 == l1 && !memcmp(a, b, l0));
        ASSERT_TRUE(l0 != l2 || memcmp(a, c, l0)); /* another seed, other arrivals */
        ASSERT_TRUE(strstr(a, "\"seed\": 5,") != NULL);
    }
    free(a);
    free(b);
    free(c);
    for (int i = 0; i < 3; i++) unlink(p[i]);
    rmdir(dir);
    kagi_scenario_free(sc);
}

static void test_outputs_are_written_whole(void)
{
    kagi_scenario *sc = load(NET5 "demands:\n  - {name: ad, from: A, to: D, rate: 100, key_size: "
                                  "100}\nevents:\n  - {at: 45s, eavesdrop: ab}\n");
    kagi_sim *s = run(sc, NULL);
    if (!s) return;
    char dir[] = "/tmp/kagi-sim-out.XXXXXX";
    if (!mkdtemp(dir)) {
        T_FAIL("mkdtemp");
        return;
    }
    char sub[128], path[192];
    snprintf(sub, sizeof sub, "%s/a/b", dir);
    ASSERT_OK(kagi_sim_write(s, sub));
    static const char *const names[] = {"metrics.json", "links.csv", "demands.csv", "report.html",
                                        "passes.csv"};
    for (int i = 0; i < 5; i++) {
        size_t n = 0;
        snprintf(path, sizeof path, "%s/%s", sub, names[i]);
        char *b = slurp(path, &n);
        ASSERT_TRUE(b && n > (i == 4 ? 50 : 100));
        if (b && i == 4) /* a network without satellites: the header alone */
            ASSERT_TRUE(n == strlen("satellite,station,aos_utc,los_utc,aos_s,tca_s,los_s,"
                                    "max_elevation_deg,light,used,block,pass_key_bits,key_bits\n"));
        if (b && i == 1) {
            const char *h = "time_s,link,pool_bits,generated_bits,consumed_bits\n";
            ASSERT_TRUE(!strncmp(b, h, strlen(h)));
        }
        if (b && i == 3) {
            b[n < (1 << 22) ? n : (1 << 22) - 1] = 0;
            ASSERT_TRUE(strstr(b, "<svg") && strstr(b, "Key pools of the busiest links") &&
                        strstr(b, "eavesdropped") && !strstr(b, "<?xml"));
        }
        free(b);
        unlink(path);
    }
    /* no temporary files are left beside them */
    snprintf(path, sizeof path, "ls -A %s | grep -q .", sub);
    ASSERT_TRUE(system(path) != 0);
    rmdir(sub);
    snprintf(path, sizeof path, "%s/a", dir);
    rmdir(path);
    rmdir(dir);
    kagi_sim_free(s);
    kagi_scenario_free(sc);
}

static void test_shipped_examples_hold_the_invariants(void)
{
    static const char *const files[] = {"examples/tokyo-qkd.yaml", "examples/japan-backbone.yaml"};
    for (int i = 0; i < 2; i++) {
        kagi_scenario *sc = NULL;
        ASSERT_OK(kagi_scenario_load(files[i], &sc));
        if (!sc) continue;
        kagi_sim_opts o;
        memset(&o, 0, sizeof o);
        o.until_s = 2 * 86400 + 7 * 3600; /* past the first cut (and the Toshiba repair) */
        kagi_sim *s = run(sc, &o);
        if (s) {
            kagi_sim_totals t;
            kagi_sim_get_totals(s, &t);
            ASSERT_TRUE(t.served > 1000 && t.generated_bits > t.consumed_bits);
            ASSERT_EQ(t.requests, t.served + t.blocked + t.timed_out + t.waiting);
        }
        kagi_sim_free(s);
        kagi_scenario_free(sc);
    }
}

/* ---- Scenario errors: file, line and key; nothing loaded ------------------ */

static void expect_error(const char *yaml, const char *const *needles)
{
    kagi_scenario *sc = (kagi_scenario *)1;
    int rc = kagi_scenario_parse(yaml, strlen(yaml), "net.yaml", &sc);
    ASSERT_EQ(rc, KAGI_ERR_FORMAT);
    ASSERT_TRUE(sc == NULL);
    for (; *needles; needles++)
        if (!strstr(kagi_errdetail(), *needles))
            T_FAIL("detail '%s' lacks '%s'", kagi_errdetail(), *needles);
}

#define TWO_NODES                                                                              \
    "duration: 1d\nnodes:\n  - {name: Tokyo, lat: 35.68, lon: 139.77}\n"                      \
    "  - {name: Osaka, lat: 34.73, lon: 135.50}\n"

static void test_scenario_errors_name_file_line_and_key(void)
{
    expect_error(TWO_NODES "links:\n  - ends: [Tokyo, Osaka]\n    fibre_loss: 0.2\n",
                 (const char *const[]){"net.yaml:7:5:", "links[0].fibre_loss", "unknown key",
                                       "did you mean fiber_loss?", NULL});
    expect_error(TWO_NODES "links:\n  - {ends: [Tokyo, Osak]}\n",
                 (const char *const[]){"net.yaml:6:20:", "links[0].ends", "unknown node 'Osak'",
                                       "did you mean Osaka?", NULL});
    expect_error(TWO_NODES "links:\n  - ends: [Tokyo, Osaka]\n    detector_efficiency: 1.5\n",
                 (const char *const[]){"net.yaml:7:26:", "links[0].detector_efficiency", "1.5",
                                       "impossible", NULL});
    expect_error("duration: 30x\n" TWO_NODES "links: []\n",
                 (const char *const[]){"net.yaml:1:11:", "duration", "unknown unit 'x'", NULL});
    expect_error(TWO_NODES "links:\n  - {ends: [Tokyo, Osaka]}\nevents:\n  - {at: 1h, cut: "
                           "Tokyo-Osak}\n",
                 (const char *const[]){"net.yaml:8:19:", "events[0].cut", "unknown link 'Tokyo-Osak'",
                                       "did you mean Tokyo-Osaka?", NULL});
    expect_error(TWO_NODES "links:\n  - {ends: [Tokyo, Osaka]}\ndemands:\n  - {from: Tokyo, to: "
                           "Nagoya, rate: 100}\n",
                 (const char *const[]){"net.yaml:8:23:", "demands[0].to", "unknown node 'Nagoya'",
                                       NULL});
    expect_error(TWO_NODES "links:\n  - {ends: [Tokyo, Osaka], length_km: -5}\n",
                 (const char *const[]){"net.yaml:6:39:", "links[0].length_km", "-5", NULL});
    /* the decoy must be below the signal: the model's own check, with the line */
    expect_error(TWO_NODES "links:\n  - {ends: [Tokyo, Osaka], mu: 0.2, decoy_mu: 0.3}\n",
                 (const char *const[]){"net.yaml:6:", "links[0] (Tokyo-Osaka)", "decoy", NULL});
    expect_error(TWO_NODES "links:\n  - {ends: [Tokyo, Osaka]}\nsatelites: []\n",
                 (const char *const[]){"net.yaml:7:1:", "satelites", "unknown key",
                                       "did you mean satellites?", NULL});
    expect_error(TWO_NODES "links:\n  - {ends: [Tokyo, Osaka]\n",
                 (const char *const[]){"net.yaml:", "YAML", NULL});
    expect_error(TWO_NODES "links:\n  - {ends: [Tokyo, Osaka]}\ndemands:\n  - {from: Tokyo, to: "
                           "Osaka}\n",
                 (const char *const[]){"net.yaml:8:5:", "demands[0]", "rate", "schedule", NULL});
    expect_error(TWO_NODES "links:\n  - {ends: [Tokyo, Osaka], mu: 0.4, mu: 0.5}\n",
                 (const char *const[]){"net.yaml:6:37:", "links[0].mu", "given twice", NULL});
    expect_error(TWO_NODES "links:\n  - {ends: [Tokyo, Osaka], key_rate: 1000, fiber_loss: 0.2}\n",
                 (const char *const[]){"links[0].fiber_loss", "key_rate", NULL});
    expect_error(TWO_NODES "links:\n  - {ends: [Tokyo, Osaka]}\n  - {ends: [Tokyo, Osaka]}\n",
                 (const char *const[]){"net.yaml:7:", "links[1]", "used twice",
                                       "parallel links need a name", NULL});
    expect_error(TWO_NODES "  - {name: Tokyo, lat: 35, lon: 139}\nlinks: []\n",
                 (const char *const[]){"net.yaml:5:", "nodes[2]", "Tokyo", "twice", NULL});
    /* libyaml slows down quadratically with nesting: refused up front */
    char deep[4096] = TWO_NODES "links: ";
    for (int i = 0; i < 1000; i++) strcat(deep, "[");
    expect_error(deep, (const char *const[]){"net.yaml:5:", "nested deeper than 32", NULL});
    expect_error(TWO_NODES "links:\n  - {ends: [Tokyo, Osaka]}\nevents:\n  - {at: 1h, cut: "
                           "Tokyo-Osaka, qber: 0.3}\n",
                 (const char *const[]){"events[0]", "qber", "only with eavesdrop", NULL});
}

static void test_durations_parse_and_print(void)
{
    static const struct {
        const char *s;
        double v;
    } ok[] = {{"30d", 2592000}, {"2h", 7200}, {"90s", 90}, {"1d12h", 129600}, {"1.5h", 5400},
              {"250ms", 0.25}, {"90", 90}, {"2w", 1209600}, {"1h 30m", 5400}};
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
        double v = -1;
        ASSERT_OK(kagi_duration_parse(ok[i].s, &v));
        ASSERT_NEAR(v, ok[i].v, 1e-12);
    }
    static const char *const bad[] = {"", "h", "5x", "-1s", "1h30", "nan", "1e400s", "s5"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        double v;
        if (kagi_duration_parse(bad[i], &v) == KAGI_OK) T_FAIL("'%s' parsed as %g", bad[i], v);
    }
    char b[48];
    kagi_duration_format(129600, b, sizeof b);
    ASSERT_TRUE(!strcmp(b, "1d12h"));
    kagi_duration_format(90, b, sizeof b);
    ASSERT_TRUE(!strcmp(b, "1m30s"));
    /* Tokyo-Osaka by the spherical law of cosines (python): 401.6973 km */
    ASSERT_NEAR(kagi_great_circle_km(35.6812, 139.7671, 34.7334, 135.5002), 401.6973, 1e-3);
}

T_MAIN(T(test_cut_link_traffic_reroutes_to_the_other_path), T(test_cut_with_no_other_path_blocks),
       T(test_waiting_requests_are_served_at_the_repair),
       T(test_waiting_requests_time_out_in_fifo_order),
       T(test_relayed_key_costs_size_plus_mac_on_every_hop),
       T(test_split_key_takes_node_disjoint_paths), T(test_untrusted_node_never_relays),
       T(test_node_down_stops_relay_and_its_links),
       T(test_route_found_before_a_first_block_is_looked_for_again),
       T(test_model_link_rate_equals_keyrate_in_whole_blocks),
       T(test_eavesdropped_link_stops_producing_from_that_moment),
       T(test_pool_is_capped_and_overflow_discarded),
       T(test_relay_over_windowed_links_waits_for_both_passes),
       T(test_same_seed_gives_identical_metrics), T(test_outputs_are_written_whole),
       T(test_shipped_examples_hold_the_invariants),
       T(test_scenario_errors_name_file_line_and_key), T(test_durations_parse_and_print))
