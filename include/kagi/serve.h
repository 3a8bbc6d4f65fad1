/* kagi/serve.h: the dashboard's HTTP server and the live feeds it serves
 * (docs/dashboard.md).
 *
 * A small plain-HTTP/1.1 server for `kagi sim --serve` and `kagi testbed
 * --serve`: GET only, one thread, poll(2). It serves the static page from
 * a web folder, a JSON snapshot of the current state at /api/state, the
 * same as server-sent events at /api/stream (one event per update), and
 * whatever else the owner answers through its api callback. Requests are
 * parsed by kagi_http_parse (kagi/kme.h), the KME's strict parser.
 *
 * Every feed holds counts and rates only: never key material. The server
 * is driven by its owner: kagi_serve_poll runs it for a while, and
 * kagi_serve_publish hands it a new state; nothing runs in between. */
#ifndef KAGI_SERVE_H
#define KAGI_SERVE_H

#include <stddef.h>
#include <stdint.h>

#include "kagi/bits.h"
#include "kagi/buf.h"
#include "kagi/sim.h"

typedef struct kagi_serve kagi_serve;

/* An answer to a GET of /api/...: status (200, 404, 400, 503), a content
 * type (static string; "application/json" when NULL) and a body. */
typedef struct kagi_serve_reply {
    int status;
    const char *type;
    kagi_buf body;    /* the callback appends to it (cap: 256 MiB) */
} kagi_serve_reply;

/* Called for every GET of a path under /api/ other than /api/state and
 * /api/stream: path (with "/api/", no query), query (NULL when absent).
 * Fill *r; a status other than 200 with an empty body gets a short JSON
 * error body. */
typedef void (*kagi_serve_api_fn)(void *ctx, const char *path, size_t path_len,
                                  const char *query, size_t query_len, kagi_serve_reply *r);

typedef struct kagi_serve_opts {
    const char *listen;       /* "ADDR:PORT" ("127.0.0.1:8080", "[::1]:0",
                                 "localhost:9000"); NULL: 127.0.0.1:8080;
                                 port 0: any free port */
    const char *web_dir;      /* the static files; NULL: none (404) */
    size_t max_conns;         /* 0: 64; more are refused (closed at once) */
    size_t header_limit;      /* request head cap, bytes; 0: 8 KiB */
    unsigned timeout_s;       /* a request not complete, or output not
                                 drained, within this: closed; 0: 10 s */
    kagi_serve_api_fn api;    /* may be NULL */
    void *api_ctx;
} kagi_serve_opts;

/* Bind and listen. KAGI_ERR_ARG for an address that does not parse,
 * KAGI_ERR_NET when it cannot be bound (the detail names it). */
int kagi_serve_new(const kagi_serve_opts *o, kagi_serve **out) KAGI_NODISCARD KAGI_NONNULL(1, 2);
void kagi_serve_free(kagi_serve *s);
/* "http://HOST:PORT/" as bound (the real port for port 0). */
const char *kagi_serve_url(const kagi_serve *s) KAGI_NONNULL(1);
/* 1 when bound to a loopback address. */
int kagi_serve_loopback(const kagi_serve *s) KAGI_NONNULL(1);

/* Serve for timeout_ms milliseconds (0: what is ready now), then return.
 * KAGI_OK, or KAGI_ERR_NET when poll itself fails (not EINTR: a signal
 * just ends the call early). Client errors only close that client. */
int kagi_serve_poll(kagi_serve *s, int timeout_ms) KAGI_NONNULL(1);

/* The new current state (JSON, copied): /api/state answers it, and every
 * /api/stream client gets it as one event "state" (a client still busy
 * with an earlier event gets only the latest once it has drained). */
int kagi_serve_publish(kagi_serve *s, const char *json, size_t len) KAGI_NODISCARD
    KAGI_NONNULL(1, 2);

/* ---- pieces, public for the tests ---- */

/* The file a request path names under root: "/" is index.html; only
 * A-Z a-z 0-9 . _ - and '/' are allowed, no segment may start with '.'
 * (so no "..", no hidden file), no '//' and no percent escapes.
 * Writes root + path into out. KAGI_ERR_ARG when refused. */
int kagi_serve_resolve(const char *root, const char *path, size_t len, char *out, size_t cap)
    KAGI_NODISCARD KAGI_NONNULL(1, 2, 4);
/* Content-Type for a file name, by its extension. */
const char *kagi_serve_type(const char *name) KAGI_NONNULL(1);
/* One server-sent event: "event: NAME\n", one "data: " line per line of
 * data ('\r' dropped), then a blank line. */
void kagi_sse_frame(kagi_buf *b, const char *event, const char *data, size_t len)
    KAGI_NONNULL(1, 2, 3);
/* The web folder to serve: dir if given; else $KAGI_WEB; else the first
 * of EXE/../web (the build tree) and EXE/../share/kagi/web (an install)
 * that holds index.html, EXE being the running executable's folder.
 * out holds at least PATH_MAX bytes. KAGI_ERR_IO naming where it looked
 * when none does. */
int kagi_serve_find_web(const char *dir, char *out, size_t cap) KAGI_NODISCARD KAGI_NONNULL(2);

/* ---- the simulator's feed (src/sim/live.c) ---- */

typedef struct kagi_live kagi_live;

/* A feed of simulation s (which must outlive it). */
int kagi_live_new(const kagi_sim *s, kagi_live **out) KAGI_NODISCARD KAGI_NONNULL(1, 2);
void kagi_live_free(kagi_live *l);

/* What does not change: the scenario's nodes (name, lat, lon, role
 * node/station/satellite, trusted, capacity), links (ends as node
 * indices, kind, length, rate, QBER, pool capacity), demands, satellites
 * and their passes (the first 2,000). mode names the feed ("sim",
 * "testbed"). JSON appended to b. */
int kagi_live_topology(kagi_live *l, const char *mode, kagi_buf *b) KAGI_NODISCARD
    KAGI_NONNULL(1, 2, 3);
/* The state now: time, per link (columns) pool, generated, consumed,
 * relay and direct bits, state, QBER; nodes up; per demand its counts
 * and the route it last used (the first 200 demands); satellites' sub-
 * points and ground tracks; passes in progress; the events applied;
 * totals. seq numbers the updates; speed is simulated seconds per wall
 * second; done: the run has ended. */
int kagi_live_state(kagi_live *l, uint64_t seq, double speed, int done, kagi_buf *b)
    KAGI_NODISCARD KAGI_NONNULL(1, 5);
/* The state at recorded sample k (kagi_sim_samples), from the time
 * series and the event log, in the shape of kagi_live_state (no routes):
 * for the page's replay. KAGI_ERR_ARG when k is out of range. */
int kagi_live_sample(kagi_live *l, size_t k, kagi_buf *b) KAGI_NODISCARD KAGI_NONNULL(1, 3);
/* The recorded time series of one link ('l'), node ('n': its links'
 * pools summed) or demand ('d'). KAGI_ERR_ARG for an index out of range. */
int kagi_live_series(kagi_live *l, char what, size_t i, kagi_buf *b) KAGI_NODISCARD
    KAGI_NONNULL(1, 4);

#endif
