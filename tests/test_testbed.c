/* Tests of what kagi testbed takes from the network simulation: a
 * scenario's SAEs and the SAEs its demands name (kagi/scenario.h), and the
 * public route (kagi_sim_route, kagi/sim.h). Oracles: paths worked out by
 * hand on a chain and on triangles of fixed-rate links (ready times of
 * whole blocks), and the exact file:line:column errors of bad SAE input. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kagi/error.h"
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

/* The load fails with KAGI_ERR_FORMAT and a detail holding want. */
static void load_fails(const char *yaml, const char *want)
{
    kagi_scenario *sc = NULL;
    int rc = kagi_scenario_parse(yaml, strlen(yaml), "t.yaml", &sc);
    ASSERT_EQ(rc, KAGI_ERR_FORMAT);
    ASSERT_TRUE(sc == NULL);
    if (!strstr(kagi_errdetail(), want)) T_FAIL("detail '%s' lacks '%s'", kagi_errdetail(), want);
    kagi_scenario_free(sc);
}

#define NODES4                                                                             \
    "nodes:\n"                                                                             \
    "  - {name: A, lat: 35.0, lon: 139.0}\n  - {name: B, lat: 35.1, lon: 139.1}\n"         \
    "  - {name: C, lat: 35.2, lon: 139.2}\n  - {name: D, lat: 35.3, lon: 139.3}\n"

/* A chain A-B-C-D of 10 kbit/s links, one 10 kbit block a second. */
#define CHAIN                                                                              \
    "duration: 100s\n" NODES4 "links:\n"                                                   \
    "  - {name: ab, ends: [A, B], key_rate: 10000, block_bits: 10000}\n"                   \
    "  - {name: bc, ends: [B, C], key_rate: 10000, block_bits: 10000}\n"                   \
    "  - {name: cd, ends: [C, D], key_rate: 10000, block_bits: 10000}\n"

static kagi_sim *sim_of(const kagi_scenario *sc)
{
    kagi_sim *s = NULL;
    if (!sc || kagi_sim_new(sc, NULL, &s) != KAGI_OK) T_FAIL("kagi_sim_new: %s", kagi_errdetail());
    return s;
}

/* The route as node names joined by '-', or the error's name. */
static void route_is(kagi_sim *s, const char *from, const char *to, const char *want)
{
    const kagi_scenario *sc = kagi_sim_scenario(s);
    size_t nodes[16], n = 99;
    long a = kagi_scenario_node(sc, from), b = kagi_scenario_node(sc, to);
    int rc = kagi_sim_route(s, (size_t)a, (size_t)b, 256, nodes, 16, &n);
    char got[256] = "";
    if (rc != KAGI_OK) {
        snprintf(got, sizeof got, "%s", kagi_errname(rc));
        if (n != 0) T_FAIL("n = %zu after a failure", n);
    }
    for (size_t i = 0; rc == KAGI_OK && i < n; i++) {
        size_t l = strlen(got);
        snprintf(got + l, sizeof got - l, "%s%s", i ? "-" : "", sc->nodes[nodes[i]].name);
    }
    if (strcmp(got, want)) T_FAIL("route %s to %s: %s, expected %s", from, to, got, want);
}

static void test_route_on_a_chain_is_every_node_in_order(void)
{
    kagi_scenario *sc = load(CHAIN);
    kagi_sim *s = sim_of(sc);
    if (s) {
        route_is(s, "A", "D", "A-B-C-D");
        route_is(s, "D", "A", "D-C-B-A");
        route_is(s, "B", "C", "B-C");
        route_is(s, "C", "A", "C-B-A");
        ASSERT_NEAR(kagi_sim_now(s), 0, 0);
    }
    kagi_sim_free(s);
    kagi_scenario_free(sc);
}

/* Triangle A-B-C with a direct A-C. Equal links: the direct one is ready
 * at 1 s, as is the relay (256 + 256 bits, one block each), and fewer hops
 * win the tie. A slow A-C (100 bit/s in 100-bit blocks: 256 bits after
 * 3 s) loses to the relay over B (ready at 1 s). */
static void test_route_on_a_triangle_takes_the_soonest_path(void)
{
    static const char *const ac[] = {"key_rate: 10000, block_bits: 10000",
                                     "key_rate: 100, block_bits: 100"};
    static const char *const want[] = {"A-C", "A-B-C"};
    for (int k = 0; k < 2; k++) {
        char y[1024];
        snprintf(y, sizeof y,
                 "duration: 100s\n" NODES4 "links:\n"
                 "  - {name: ab, ends: [A, B], key_rate: 10000, block_bits: 10000}\n"
                 "  - {name: bc, ends: [B, C], key_rate: 10000, block_bits: 10000}\n"
                 "  - {name: ac, ends: [A, C], %s}\n"
                 "  - {name: cd, ends: [C, D], key_rate: 10000, block_bits: 10000}\n",
                 ac[k]);
        kagi_scenario *sc = load(y);
        kagi_sim *s = sim_of(sc);
        if (s) {
            route_is(s, "A", "C", want[k]);
            route_is(s, "A", "D", k ? "A-B-C-D" : "A-C-D");
        }
        kagi_sim_free(s);
        kagi_scenario_free(sc);
    }
}

static void test_route_refuses_untrusted_relays_and_bad_arguments(void)
{
    kagi_scenario *sc = load("duration: 100s\nnodes:\n"
                             "  - {name: A, lat: 35.0, lon: 139.0}\n"
                             "  - {name: B, lat: 35.1, lon: 139.1, trusted: false}\n"
                             "  - {name: C, lat: 35.2, lon: 139.2}\n"
                             "links:\n"
                             "  - {name: ab, ends: [A, B], key_rate: 10000}\n"
                             "  - {name: bc, ends: [B, C], key_rate: 10000}\n");
    kagi_sim *s = sim_of(sc);
    if (s) {
        route_is(s, "A", "C", "KAGI_ERR_NOKEY");
        route_is(s, "A", "B", "A-B"); /* an untrusted node may be an end */
        size_t nodes[2], n;
        ASSERT_EQ(kagi_sim_route(s, 0, 0, 256, nodes, 2, &n), KAGI_ERR_ARG);
        ASSERT_EQ(kagi_sim_route(s, 0, 7, 256, nodes, 2, &n), KAGI_ERR_ARG);
        ASSERT_EQ(kagi_sim_route(s, 0, 1, 256, nodes, 1, &n), KAGI_ERR_ARG); /* 2 nodes, room for 1 */
    }
    kagi_sim_free(s);
    kagi_scenario_free(sc);
}

#define SAES                                                                               \
    "saes:\n  - {id: alice, node: A}\n  - {id: bob.1, node: D}\n  - {id: mid~x, node: B}\n"

static void test_saes_and_demand_ends_load(void)
{
    kagi_scenario *sc = load(CHAIN SAES
                             "demands:\n"
                             "  - {from: A, to: D, rate: 100, master: alice, slave: bob.1}\n"
                             "  - {from: B, to: D, rate: 100, master: mid~x}\n"
                             "  - {from: A, to: C, rate: 100}\n");
    if (!sc) return;
    ASSERT_EQ(sc->nsaes, 3);
    ASSERT_TRUE(!strcmp(sc->saes[1].id, "bob.1"));
    ASSERT_EQ(sc->saes[1].node, 3);
    ASSERT_EQ(sc->saes[2].line, 14);
    ASSERT_EQ(kagi_scenario_sae(sc, "mid~x"), 2);
    ASSERT_EQ(kagi_scenario_sae(sc, "nobody"), -1);
    ASSERT_EQ(sc->demands[0].master, 1); /* 1 + index */
    ASSERT_EQ(sc->demands[0].slave, 2);
    ASSERT_EQ(sc->demands[1].master, 3);
    ASSERT_EQ(sc->demands[1].slave, 0);
    ASSERT_EQ(sc->demands[2].master, 0);
    /* the simulator ignores them */
    kagi_sim *s = sim_of(sc);
    if (s) ASSERT_OK(kagi_sim_run(s));
    kagi_sim_free(s);
    kagi_scenario_free(sc);
}

static void test_bad_saes_are_refused_with_their_position(void)
{
    load_fails(CHAIN "saes:\n  - {id: al ice, node: A}\n",
               "t.yaml:12:10: saes[0].id: 'al ice' is not an SAE id");
    load_fails(CHAIN "saes:\n  - {id: alice, node: Q}\n", "t.yaml:12:23: saes[0].node: unknown node 'Q'");
    load_fails(CHAIN "saes:\n  - {id: alice, node: A}\n  - {id: alice, node: B}\n",
               "t.yaml:13:10: saes[1]: id: 'alice' is already used by saes[0]");
    load_fails(CHAIN "saes:\n  - {id: alice}\n", "t.yaml:12:5: saes[0]: missing key 'node'");
    load_fails(CHAIN "saes:\n  - {id: alice, node: A, kme: A}\n", "saes[0].kme: unknown key");
    load_fails(CHAIN SAES "demands:\n  - {from: A, to: D, rate: 1, master: alic}\n",
               "t.yaml:16:39: demands[0].master: unknown SAE 'alic' (did you mean alice?)");
    load_fails(CHAIN SAES "demands:\n  - {from: A, to: D, rate: 1, master: bob.1}\n",
               "demands[0]: master: SAE bob.1 is at node D, not at A (the demand's from)");
    load_fails(CHAIN SAES "demands:\n  - {from: A, to: C, rate: 1, slave: bob.1}\n",
               "demands[0]: slave: SAE bob.1 is at node D, not at C (the demand's to)");
}

static void test_scenario_check_catches_sae_errors_made_in_code(void)
{
    kagi_scenario *sc = load(CHAIN);
    if (!sc) return;
    kagi_sc_sae a = {"ok", 0, 0};
    ASSERT_OK(kagi_scenario_add_sae(sc, &a, NULL));
    ASSERT_OK(kagi_scenario_check(sc));
    kagi_sc_demand d;
    kagi_sc_demand_defaults(&d);
    snprintf(d.name, sizeof d.name, "x");
    d.src = 1;
    d.dst = 2;
    d.rate_bps = 1;
    d.master = 1; /* "ok" is at A, the demand starts at B */
    ASSERT_OK(kagi_scenario_add_demand(sc, &d, NULL));
    ASSERT_EQ(kagi_scenario_check(sc), KAGI_ERR_ARG);
    ASSERT_TRUE(strstr(kagi_errdetail(), "master: SAE ok is at node A, not at B") != NULL);
    sc->demands[0].master = 5;
    ASSERT_EQ(kagi_scenario_check(sc), KAGI_ERR_ARG);
    sc->demands[0].master = 0;
    snprintf(sc->saes[0].id, sizeof sc->saes[0].id, "b/d");
    ASSERT_EQ(kagi_scenario_check(sc), KAGI_ERR_ARG);
    ASSERT_TRUE(strstr(kagi_errdetail(), "saes[0]: id 'b/d'") != NULL);
    ASSERT_TRUE(kagi_sc_valid_id("A.b_c~d-9"));
    ASSERT_TRUE(!kagi_sc_valid_id(""));
    kagi_scenario_free(sc);
}

T_MAIN(T(test_route_on_a_chain_is_every_node_in_order),
       T(test_route_on_a_triangle_takes_the_soonest_path),
       T(test_route_refuses_untrusted_relays_and_bad_arguments),
       T(test_saes_and_demand_ends_load),
       T(test_bad_saes_are_refused_with_their_position),
       T(test_scenario_check_catches_sae_errors_made_in_code))
