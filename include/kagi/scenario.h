/* kagi/scenario.h: the description of a QKD network for the simulator
 * (kagi/sim.h): nodes, links, ground stations, satellites, demands,
 * events, and the run's settings.
 *
 * A scenario comes from a YAML file (kagi_scenario_load; every key, its
 * unit and default are in docs/scenario.md) or is built in code with the
 * kagi_scenario_add_* functions (the benchmark does so). Either way
 * kagi_scenario_check() validates it as a whole before a simulation may use
 * it. Units: seconds, bits, bit/s, km, degrees. Names are 1..63 bytes of
 * printable UTF-8 without '"', ',' or '\\'. */
#ifndef KAGI_SCENARIO_H
#define KAGI_SCENARIO_H

#include <stddef.h>
#include <stdint.h>

#include "kagi/bits.h"
#include "kagi/freespace.h"
#include "kagi/keyrate.h"
#include "kagi/orbit.h"

#define KAGI_SC_NAME_MAX 64

typedef struct kagi_sc_node {
    char name[KAGI_SC_NAME_MAX];
    double lat_deg, lon_deg;   /* WGS-84, for the map and "from coordinates" */
    int trusted;               /* 1: may relay keys (a trusted node) */
    uint64_t capacity_bits;    /* key store, shared by the pools of its links */
    size_t line;               /* line in the scenario file, 0 if built in code */
} kagi_sc_node;

typedef enum kagi_sc_link_kind {
    KAGI_SC_LINK_MODEL = 0, /* rate from kagi_keyrate (fibre, BB84 or TF-QKD) */
    KAGI_SC_LINK_FIXED,     /* a measured rate in bit/s */
    KAGI_SC_LINK_SCHEDULED, /* key only at the end of scheduled windows: a
                               satellite link (sat, gs below) gets one per
                               pass, or per block of passes (kagi/sim.h) */
} kagi_sc_link_kind;

/* One window of a scheduled link: bits distilled from [t0_s, t1_s),
 * delivered at t1_s if the link was up and unobserved throughout. */
typedef struct kagi_sc_window {
    double t0_s, t1_s;
    uint64_t bits;
} kagi_sc_window;

typedef struct kagi_sc_link {
    char name[KAGI_SC_NAME_MAX]; /* default "A-B" */
    size_t a, b;                 /* node indices, a != b */
    kagi_sc_link_kind kind;
    double length_km;            /* < 0: great circle between the nodes times
                                    route_factor */
    double route_factor;         /* >= 1, default 1 */
    /* KAGI_SC_LINK_MODEL */
    kagi_protocol protocol;
    kagi_decoys decoys;
    double n_block;              /* key-basis detections per finite block; 0:
                                    asymptotic (key arrives once a second) */
    int optimize;                /* kagi_keyrate_optimize the free parameters */
    kagi_link model;             /* device parameters; distance_km is set
                                    from length_km */
    /* KAGI_SC_LINK_FIXED */
    double key_rate_bps;
    uint64_t block_bits;         /* bits per delivery; 0: one second's worth */
    /* KAGI_SC_LINK_SCHEDULED: sorted, non-overlapping; owned */
    kagi_sc_window *windows;
    size_t nwindows;
    uint64_t pool_bits;          /* pool capacity; 0: an even share of both
                                    ends' key stores (docs/scenario.md) */
    size_t line;
    /* A satellite link (scheduled, made by kagi_scenario_link_satellites):
     * 1 + the index of its satellite in satellites[] and of its ground
     * station in stations[]; 0 and 0 for every other link. Its ends are
     * the two's nodes. */
    size_t sat, gs;
} kagi_sc_link;

typedef enum kagi_sc_policy { KAGI_SC_WAIT = 0, KAGI_SC_BLOCK } kagi_sc_policy;

/* A scheduled request: count requests of bits each, at at_s, at_s + every_s,
 * ... */
typedef struct kagi_sc_request {
    double at_s;
    uint64_t bits;
    uint64_t count;   /* >= 1 */
    double every_s;   /* > 0 when count > 1 */
} kagi_sc_request;

typedef struct kagi_sc_demand {
    char name[KAGI_SC_NAME_MAX];  /* default "FROM>TO" */
    size_t src, dst;              /* node indices, src != dst */
    /* Either a rate (requests of key_bits every key_bits/rate_bps seconds,
     * periodic or Poisson) or a schedule. */
    double rate_bps;
    uint64_t key_bits;            /* default 256 */
    int poisson;                  /* arrivals: 0 periodic, 1 Poisson */
    kagi_sc_request *schedule;    /* owned */
    size_t nschedule;
    kagi_sc_policy policy;        /* default wait */
    double timeout_s;             /* wait at most this long; INFINITY: for ever */
    uint64_t max_queue;           /* waiting requests beyond this are blocked */
    unsigned split;               /* XOR shares over this many node-disjoint
                                     paths, 1..8; default 1 */
    double start_s, stop_s;       /* requests in [start, stop] */
    /* The SAEs (applications) the demand stands for, for a testbed: 1 + an
     * index in saes[] (at src and at dst respectively), 0 for none. The
     * simulator ignores them. */
    size_t master, slave;
    size_t line;
} kagi_sc_demand;

typedef enum kagi_sc_event_kind {
    KAGI_SC_CUT = 0,   /* a link's fibre is cut: no key, no relay over it */
    KAGI_SC_REPAIR,    /* a cut or eavesdropped link works again */
    KAGI_SC_NODE_DOWN, /* a node stops: its links make no key, it relays nothing */
    KAGI_SC_NODE_UP,
    KAGI_SC_EAVESDROP, /* QBER rises to qber: the link makes no key from now on
                          (its pool, distilled before, stays usable) */
} kagi_sc_event_kind;

typedef struct kagi_sc_event {
    double at_s;
    kagi_sc_event_kind kind;
    size_t target;      /* link index, or node index for NODE_* */
    double qber;        /* EAVESDROP only, (0, 0.5]; default 0.25 */
    size_t line;
} kagi_sc_event;

/* A ground station: the free-space end of satellite links, and a node
 * (nodes[node]: name, position, trust, key store) that fibre links may
 * join like any other. */
typedef struct kagi_sc_station {
    size_t node;             /* its node; one station per node */
    double alt_m;            /* height above the WGS-84 ellipsoid, [-500, 9000] */
    double min_el_deg;       /* passes above this elevation, [0, 89]; default 10 */
    char preset[32];         /* the preset link gave the ground values */
    kagi_fso_link link;      /* its ground values count (kagi_sc_pair_link):
                                receiver optics, atmosphere, turbulence,
                                detectors, background */
    size_t line;
} kagi_sc_station;

/* A satellite: a node (nodes[node], trusted to relay) that holds the key
 * of every pass over every ground station and relays between them. Its
 * node's lat/lon are not used (the YAML loader sets them to the sub-
 * satellite point at the start, for the outputs). */
typedef struct kagi_sc_satellite {
    size_t node;
    kagi_tle tle;            /* its orbit (SGP4) */
    char preset[32];
    kagi_fso_link link;      /* its payload values count: source,
                                transmitter, post-processing */
    unsigned passes_per_block; /* passes whose counts form one finite-key
                                  block, 1..1000; default 1 */
    int night_only;          /* 1: only passes wholly at night count */
    double step_s;           /* sampling step through a pass, [0.01, 600] s;
                                default 10 */
    size_t line;
} kagi_sc_satellite;

/* An application (secure application entity) attached to a node, for a
 * testbed (kagi testbed starts a KME per node): its id is an ETSI GS QKD
 * 014 SAE id. The simulator ignores SAEs. */
#define KAGI_SC_SAE_ID_MAX 64
typedef struct kagi_sc_sae {
    char id[KAGI_SC_SAE_ID_MAX + 1]; /* 1..64 of A-Z a-z 0-9 . _ ~ -, unique */
    size_t node;                     /* the node whose KME serves it */
    size_t line;
} kagi_sc_sae;

typedef struct kagi_scenario {
    char name[128];
    char origin[256];       /* file it came from ("" if built in code) */
    double start_utc;       /* UTC instant of simulated time 0 (kagi_utc);
                               NaN: not set (needed with satellites) */
    double duration_s;      /* > 0 */
    double sample_s;        /* time-series interval; 0: chosen from duration */
    uint64_t seed;
    uint64_t mac_bits;      /* Wegman-Carter key per relayed hop message, default 256 */
    double route_reserve;   /* routing cost 1 + reserve * need / pool per hop,
                               default 100 */
    kagi_sc_node *nodes;
    size_t nnodes;
    kagi_sc_link *links;
    size_t nlinks;
    kagi_sc_demand *demands;
    size_t ndemands;
    kagi_sc_event *events;  /* in time order after kagi_scenario_check */
    size_t nevents;
    kagi_sc_station *stations;
    size_t nstations;
    kagi_sc_satellite *satellites;
    size_t nsatellites;
    kagi_sc_sae *saes;      /* testbed applications; the simulator ignores them */
    size_t nsaes;
    size_t cap_[7];         /* allocated lengths (internal) */
} kagi_scenario;

/* An empty scenario with the defaults (duration 1 day, seed 1). Freed with
 * kagi_scenario_free. */
int kagi_scenario_new(kagi_scenario **out) KAGI_NODISCARD KAGI_NONNULL(1);
/* Frees everything it owns; accepts NULL. */
void kagi_scenario_free(kagi_scenario *sc);

/* Defaults of docs/scenario.md for a link, demand, ground station or
 * satellite (indices 0; the micius preset for the free-space values; a
 * satellite's tle zeroed). */
void kagi_sc_link_defaults(kagi_sc_link *l) KAGI_NONNULL(1);
void kagi_sc_demand_defaults(kagi_sc_demand *d) KAGI_NONNULL(1);
void kagi_sc_station_defaults(kagi_sc_station *g) KAGI_NONNULL(1);
void kagi_sc_satellite_defaults(kagi_sc_satellite *s) KAGI_NONNULL(1);

/* Append a copy (the scenario takes ownership of windows and schedule,
 * on success and failure alike). *index may be NULL. */
int kagi_scenario_add_node(kagi_scenario *sc, const kagi_sc_node *n, size_t *index)
    KAGI_NODISCARD KAGI_NONNULL(1, 2);
int kagi_scenario_add_link(kagi_scenario *sc, const kagi_sc_link *l, size_t *index)
    KAGI_NODISCARD KAGI_NONNULL(1, 2);
int kagi_scenario_add_demand(kagi_scenario *sc, const kagi_sc_demand *d, size_t *index)
    KAGI_NODISCARD KAGI_NONNULL(1, 2);
int kagi_scenario_add_event(kagi_scenario *sc, const kagi_sc_event *e) KAGI_NODISCARD
    KAGI_NONNULL(1, 2);
/* A ground station or satellite on a node added before (its node index in
 * the item). Neither adds links: see kagi_scenario_link_satellites. */
int kagi_scenario_add_station(kagi_scenario *sc, const kagi_sc_station *g, size_t *index)
    KAGI_NODISCARD KAGI_NONNULL(1, 2);
int kagi_scenario_add_satellite(kagi_scenario *sc, const kagi_sc_satellite *s, size_t *index)
    KAGI_NODISCARD KAGI_NONNULL(1, 2);
/* An SAE on a node added before. */
int kagi_scenario_add_sae(kagi_scenario *sc, const kagi_sc_sae *a, size_t *index)
    KAGI_NODISCARD KAGI_NONNULL(1, 2);
/* Index of the SAE with this id; -1 if none. */
long kagi_scenario_sae(const kagi_scenario *sc, const char *id) KAGI_NONNULL(1, 2);
/* 1 if s is a valid SAE (or KME) id: 1..64 of A-Z a-z 0-9 . _ ~ - */
int kagi_sc_valid_id(const char *s) KAGI_NONNULL(1);
/* Add the satellite link of every (satellite, ground station) pair that
 * has none yet: scheduled, named "SAT-STATION", no windows of its own (the
 * simulator fills them from the passes). */
int kagi_scenario_link_satellites(kagi_scenario *sc) KAGI_NODISCARD KAGI_NONNULL(1);
/* The free-space link of satellite sat over ground station gs: the
 * station's link with the satellite's payload values (wavelength,
 * transmitter aperture, divergence, pointing jitter, direction; intensities
 * and their probabilities, p_x, clock; f_ec, eps_sec, eps_cor) put in. */
void kagi_sc_pair_link(const kagi_scenario *sc, size_t sat, size_t gs, kagi_fso_link *out)
    KAGI_NONNULL(1, 4);
/* Index of the node or link named name; -1 if none. */
long kagi_scenario_node(const kagi_scenario *sc, const char *name) KAGI_NONNULL(1, 2);
long kagi_scenario_link(const kagi_scenario *sc, const char *name) KAGI_NONNULL(1, 2);

/* Whole-scenario validation: unique names (and SAE ids), indices in range
 * (a demand's master and slave SAEs at its from and to nodes), values in
 * range (kagi_link_check for model links, kagi_fso_check for every
 * satellite-station pair, SGP4 set-up for every satellite), windows
 * sorted, satellite nodes joined only by their satellite links, a start
 * when there are satellites; sorts the events by time (stable). KAGI_ERR_ARG naming the item (and its file line
 * when it came from one). */
int kagi_scenario_check(kagi_scenario *sc) KAGI_NODISCARD KAGI_NONNULL(1);

/* Load and check a YAML scenario of at most 64 MiB. Any problem (a YAML
 * syntax error, an unknown key, a missing one, a value out of range, a
 * reference to an unknown node or link, a TLE that does not parse) fails
 * with KAGI_ERR_FORMAT and a detail "FILE:LINE:COLUMN: PATH.KEY: what"
 * (e.g. "net.yaml:14:5: links[2].fibre_loss: unknown key (did you mean
 * fiber_loss?)"; "net.yaml:31:7: satellites[0].tle: TLE line 2, column 69:
 * ..."); KAGI_ERR_IO when the file cannot be read. A tle_file is read
 * relative to the scenario's folder. Nothing is returned on failure. */
int kagi_scenario_load(const char *path, kagi_scenario **out) KAGI_NODISCARD
    KAGI_NONNULL(1, 2);
/* The same from a text in memory; origin names it in messages (and its
 * folder is where tle_file paths start). */
int kagi_scenario_parse(const char *text, size_t len, const char *origin, kagi_scenario **out)
    KAGI_NODISCARD KAGI_NONNULL(1, 3, 4);

/* A duration: a number of seconds ("90", "1.5e3") or numbers with units
 * ms, s, m (minutes), h, d, w, concatenated ("30d", "2h", "1d12h", "90s",
 * "1.5h"). KAGI_ERR_ARG for anything else or a negative or non-finite
 * result. */
int kagi_duration_parse(const char *s, double *seconds) KAGI_NODISCARD KAGI_NONNULL(1, 2);
/* Write a duration the way it would be typed ("1d12h", "90s", "250ms")
 * into buf (at least 32 bytes). */
void kagi_duration_format(double seconds, char *buf, size_t len) KAGI_NONNULL(2);

/* Great-circle distance between two points on a sphere of radius
 * 6371.0088 km (the IUGG mean radius), haversine formula. */
double kagi_great_circle_km(double lat1_deg, double lon1_deg, double lat2_deg, double lon2_deg);

#endif
