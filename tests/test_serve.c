/* Tests of the dashboard's server and feed (kagi/serve.h) without a
 * browser: path resolution refusing traversal, content types, server-sent
 * event framing, the JSON state and replay of a tiny scenario against
 * figures worked out by hand, and HTTP exchanges with a real server on a
 * loopback port (static file, state, stream, refusals, limits). */
#define _GNU_SOURCE /* realpath */
#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kagi/error.h"
#include "kagi/scenario.h"
#include "kagi/serve.h"
#include "kagi/sim.h"
#include "t.h"

static void resolve_serves_files_under_root_only(void)
{
    char out[256];
    ASSERT_OK(kagi_serve_resolve("/w", "/", 1, out, sizeof out));
    ASSERT_TRUE(!strcmp(out, "/w/index.html"));
    ASSERT_OK(kagi_serve_resolve("/w", "/app.js", 7, out, sizeof out));
    ASSERT_TRUE(!strcmp(out, "/w/app.js"));
    ASSERT_OK(kagi_serve_resolve("/w", "/img/a-b_c.png", 14, out, sizeof out));
    ASSERT_TRUE(!strcmp(out, "/w/img/a-b_c.png"));
    /* the length is honoured: what follows is not part of the path */
    ASSERT_OK(kagi_serve_resolve("/w", "/style.css?x=1", 10, out, sizeof out));
    ASSERT_TRUE(!strcmp(out, "/w/style.css"));
    const char *bad[] = {"/../etc/passwd", "/a/../../b", "/..", "/.git/config", "/.hidden",
                         "//etc/passwd", "/%2e%2e/x", "/a\\b", "/dir/", "x", "/a b",
                         "/a/./b", "/\xc3\xa9"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int rc = kagi_serve_resolve("/w", bad[i], strlen(bad[i]), out, sizeof out);
        if (rc != KAGI_ERR_ARG) T_FAIL("'%s' was not refused (rc %d)", bad[i], rc);
    }
    ASSERT_EQ(kagi_serve_resolve("/w", "", 0, out, sizeof out), KAGI_ERR_ARG);
    /* too long for out: refused, not cut */
    ASSERT_EQ(kagi_serve_resolve("/w", "/abcdefgh.js", 12, out, 8), KAGI_ERR_ARG);
}

static void content_types_by_extension(void)
{
    ASSERT_TRUE(!strcmp(kagi_serve_type("/w/index.html"), "text/html; charset=utf-8"));
    ASSERT_TRUE(!strcmp(kagi_serve_type("app.js"), "text/javascript; charset=utf-8"));
    ASSERT_TRUE(!strcmp(kagi_serve_type("a/style.css"), "text/css; charset=utf-8"));
    ASSERT_TRUE(!strcmp(kagi_serve_type("m.json"), "application/json"));
    ASSERT_TRUE(!strcmp(kagi_serve_type("x.svg"), "image/svg+xml"));
    ASSERT_TRUE(!strcmp(kagi_serve_type("a.d/README"), "application/octet-stream"));
    ASSERT_TRUE(!strcmp(kagi_serve_type("noext"), "application/octet-stream"));
}

static int buf_is(const kagi_buf *b, const char *want)
{
    return b->len == strlen(want) && !memcmp(b->p, want, b->len);
}

static void sse_frames_one_data_line_per_line(void)
{
    kagi_buf b;
    kagi_buf_init(&b, 1 << 20);
    kagi_sse_frame(&b, "state", "{\"a\": 1}", 8);
    ASSERT_TRUE(buf_is(&b, "event: state\ndata: {\"a\": 1}\n\n"));
    kagi_buf_reset(&b);
    kagi_sse_frame(&b, "state", "a\nb\r\nc", 6);
    ASSERT_TRUE(buf_is(&b, "event: state\ndata: a\ndata: b\ndata: c\n\n"));
    kagi_buf_reset(&b);
    kagi_sse_frame(&b, "x", "", 0);
    ASSERT_TRUE(buf_is(&b, "event: x\ndata: \n\n"));
    kagi_buf_reset(&b);
    kagi_sse_frame(&b, "x", "end\n", 4); /* a trailing newline adds no empty line */
    ASSERT_TRUE(buf_is(&b, "event: x\ndata: end\n\n"));
    kagi_buf_free(&b);
}

/* Two nodes, one link of 1000 bit/s in 1000-bit blocks (one a second), a
 * request of 2000 bits at 5 s (served directly: one hop), a cut at 7.5 s.
 * At 10.5 s: generated 7000 (blocks at 1..7 s), consumed 2000, pool 5000,
 * the link cut, the demand served once with its route the link. */
static const char *tiny =
    "name: tiny\nduration: 20s\nsample: 1s\nseed: 1\n"
    "nodes:\n  - {name: A, lat: 35.0, lon: 139.0}\n  - {name: B, lat: 35.5, lon: 139.5}\n"
    "links:\n  - {name: ab, ends: [A, B], key_rate: 1000, block_bits: 1000, pool_bits: 1 Mbit}\n"
    "demands:\n  - name: d\n    from: A\n    to: B\n    schedule:\n      - {at: 5s, bits: 2000}\n"
    "events:\n  - {at: 7.5s, cut: ab}\n";

static json_t *parse(const kagi_buf *b)
{
    json_error_t e;
    json_t *j = json_loadb((const char *)b->p, b->len, 0, &e);
    if (!j) T_FAIL("JSON does not parse: %s at %d: %.*s", e.text, e.position, (int)b->len, b->p);
    return j;
}

static long long col(json_t *j, const char *obj, const char *key, size_t i)
{
    return json_integer_value(json_array_get(json_object_get(json_object_get(j, obj), key), i));
}

static void live_state_of_a_tiny_network_matches_hand_figures(void)
{
    kagi_scenario *sc = NULL;
    ASSERT_OK(kagi_scenario_parse(tiny, strlen(tiny), "tiny.yaml", &sc));
    kagi_sim *s = NULL;
    ASSERT_OK(kagi_sim_new(sc, NULL, &s));
    kagi_live *l = NULL;
    ASSERT_OK(kagi_live_new(s, &l));
    kagi_buf b;
    kagi_buf_init(&b, 1 << 24);
    /* topology */
    ASSERT_OK(kagi_live_topology(l, "sim", &b));
    json_t *t = parse(&b);
    json_t *lk = json_array_get(json_object_get(t, "links"), 0);
    ASSERT_TRUE(!strcmp(json_string_value(json_object_get(t, "mode")), "sim"));
    ASSERT_EQ(json_array_size(json_object_get(t, "nodes")), 2);
    ASSERT_EQ(json_integer_value(json_object_get(lk, "a")), 0);
    ASSERT_EQ(json_integer_value(json_object_get(lk, "b")), 1);
    ASSERT_NEAR(json_number_value(json_object_get(lk, "rate_bps")), 1000, 1e-9);
    ASSERT_EQ(json_integer_value(json_object_get(lk, "capacity_bits")), 1000000);
    ASSERT_TRUE(!strcmp(json_string_value(json_object_get(lk, "kind")), "fixed"));
    json_t *pe = json_array_get(json_object_get(t, "planned_events"), 0);
    ASSERT_TRUE(!strcmp(json_string_value(json_object_get(pe, "name")), "ab"));
    json_decref(t);
    /* the state at 10.5 s */
    ASSERT_OK(kagi_sim_run_until(s, 10.5));
    kagi_buf_reset(&b);
    ASSERT_OK(kagi_live_state(l, 7, 2.5, 0, &b));
    json_t *j = parse(&b);
    ASSERT_EQ(json_integer_value(json_object_get(j, "seq")), 7);
    ASSERT_NEAR(json_number_value(json_object_get(j, "t_s")), 10.5, 1e-9);
    ASSERT_NEAR(json_number_value(json_object_get(j, "speed")), 2.5, 1e-9);
    ASSERT_TRUE(json_is_false(json_object_get(j, "done")));
    ASSERT_EQ(col(j, "links", "generated_bits", 0), 7000);
    ASSERT_EQ(col(j, "links", "consumed_bits", 0), 2000);
    ASSERT_EQ(col(j, "links", "pool_bits", 0), 5000);
    ASSERT_EQ(col(j, "links", "direct_bits", 0), 2000);
    ASSERT_EQ(col(j, "links", "relay_bits", 0), 0);
    ASSERT_EQ(col(j, "links", "state", 0), KAGI_SIM_CUT);
    ASSERT_EQ(col(j, "nodes", "up", 0), 1);
    ASSERT_EQ(col(j, "demands", "served", 0), 1);
    ASSERT_EQ(col(j, "demands", "served_bits", 0), 2000);
    json_t *route = json_array_get(json_object_get(json_object_get(j, "demands"), "route"), 0);
    ASSERT_EQ(json_array_size(route), 1);
    ASSERT_EQ(json_integer_value(json_array_get(route, 0)), 0);
    ASSERT_EQ(json_integer_value(json_object_get(j, "events_applied")), 1);
    json_t *ev = json_array_get(json_object_get(j, "events"), 0);
    ASSERT_TRUE(!strcmp(json_string_value(json_object_get(ev, "kind")), "cut"));
    ASSERT_NEAR(json_number_value(json_object_get(ev, "at_s")), 7.5, 1e-9);
    json_t *tot = json_object_get(j, "totals");
    ASSERT_EQ(json_integer_value(json_object_get(tot, "consumed_bits")), 2000);
    json_decref(j);
    /* replay: samples at 0, 1, ..., 10 s so far */
    ASSERT_EQ(kagi_sim_samples(s), 11);
    kagi_buf_reset(&b);
    ASSERT_OK(kagi_live_sample(l, 3, &b));
    j = parse(&b);
    ASSERT_NEAR(json_number_value(json_object_get(j, "t_s")), 3, 1e-9);
    ASSERT_EQ(col(j, "links", "pool_bits", 0), 3000);
    ASSERT_EQ(col(j, "links", "state", 0), KAGI_SIM_UP);
    ASSERT_EQ(json_integer_value(json_object_get(j, "events_applied")), 0);
    json_decref(j);
    kagi_buf_reset(&b);
    ASSERT_OK(kagi_live_sample(l, 9, &b));
    j = parse(&b);
    ASSERT_EQ(col(j, "links", "pool_bits", 0), 5000);
    ASSERT_EQ(col(j, "links", "generated_bits", 0), 7000);
    ASSERT_EQ(col(j, "links", "state", 0), KAGI_SIM_CUT);
    ASSERT_EQ(col(j, "demands", "served", 0), 1);
    json_decref(j);
    kagi_buf_reset(&b);
    ASSERT_EQ(kagi_live_sample(l, 11, &b), KAGI_ERR_ARG);
    /* series: the link, node A (its one link), the demand */
    kagi_buf_reset(&b);
    ASSERT_OK(kagi_live_series(l, 'l', 0, &b));
    j = parse(&b);
    ASSERT_EQ(json_array_size(json_object_get(j, "t_s")), 11);
    ASSERT_EQ(json_integer_value(json_array_get(json_object_get(j, "pool_bits"), 6)), 4000);
    json_decref(j);
    kagi_buf_reset(&b);
    ASSERT_OK(kagi_live_series(l, 'n', 1, &b));
    j = parse(&b);
    ASSERT_EQ(json_integer_value(json_array_get(json_object_get(j, "pool_bits"), 10)), 5000);
    json_decref(j);
    kagi_buf_reset(&b);
    ASSERT_OK(kagi_live_series(l, 'd', 0, &b));
    j = parse(&b);
    ASSERT_EQ(json_integer_value(json_array_get(json_object_get(j, "served"), 4)), 0);
    ASSERT_EQ(json_integer_value(json_array_get(json_object_get(j, "served"), 5)), 1);
    json_decref(j);
    ASSERT_EQ(kagi_live_series(l, 'l', 1, &b), KAGI_ERR_ARG);
    ASSERT_EQ(kagi_live_series(l, 'x', 0, &b), KAGI_ERR_ARG);
    kagi_buf_free(&b);
    kagi_live_free(l);
    kagi_sim_free(s);
    kagi_scenario_free(sc);
}

/* ---- HTTP exchanges with a real server ---- */

static int connect_to(const char *url)
{
    unsigned port = 0;
    if (sscanf(url, "http://127.0.0.1:%u/", &port) != 1) return -1;
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Send req, let the server run, read what came back (until want appears
 * or a few rounds pass). */
static size_t exchange(kagi_serve *s, int fd, const char *req, size_t req_len, char *out,
                       size_t cap, const char *want)
{
    if (req_len && send(fd, req, req_len, MSG_NOSIGNAL) != (ssize_t)req_len) return 0;
    size_t n = 0;
    for (int round = 0; round < 40; round++) {
        if (kagi_serve_poll(s, 10) != KAGI_OK) break;
        ssize_t r = recv(fd, out + n, cap - 1 - n, MSG_DONTWAIT);
        if (r > 0) n += (size_t)r;
        out[n] = 0;
        if (r == 0 || (want && strstr(out, want))) break;
    }
    return n;
}

static void server_answers_files_state_and_stream(void)
{
    char dir[] = "/tmp/kagi-serve-XXXXXX";
    if (!mkdtemp(dir)) {
        T_FAIL("mkdtemp: %s", strerror(errno));
        return;
    }
    char p[256];
    snprintf(p, sizeof p, "%s/index.html", dir);
    FILE *f = fopen(p, "w");
    fputs("<!DOCTYPE html><title>hello</title>", f);
    fclose(f);
    /* KAGI_WEB names the folder when no --web is given; --web wins */
    static char found[PATH_MAX], real[PATH_MAX];
    setenv("KAGI_WEB", dir, 1);
    ASSERT_OK(kagi_serve_find_web(NULL, found, sizeof found));
    ASSERT_TRUE(realpath(dir, real) && !strcmp(found, real));
    ASSERT_EQ(kagi_serve_find_web("/", found, sizeof found), KAGI_ERR_IO);
    unsetenv("KAGI_WEB");
    kagi_serve_opts o;
    memset(&o, 0, sizeof o);
    o.listen = "127.0.0.1:0";
    o.web_dir = dir;
    o.header_limit = 1024;
    o.max_conns = 4;
    kagi_serve *s = NULL;
    ASSERT_OK(kagi_serve_new(&o, &s));
    if (!s) return;
    ASSERT_TRUE(kagi_serve_loopback(s));
    ASSERT_TRUE(!strncmp(kagi_serve_url(s), "http://127.0.0.1:", 17));
    static char out[1 << 16];
    int fd = connect_to(kagi_serve_url(s));
    ASSERT_TRUE(fd >= 0);
    /* the page, then (same connection, kept alive) the state before any */
    const char *r1 = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    exchange(s, fd, r1, strlen(r1), out, sizeof out, "</title>");
    ASSERT_TRUE(!strncmp(out, "HTTP/1.1 200 OK\r\n", 17));
    ASSERT_TRUE(strstr(out, "Content-Type: text/html; charset=utf-8\r\n") != NULL);
    ASSERT_TRUE(strstr(out, "\r\n\r\n<!DOCTYPE html><title>hello</title>") != NULL);
    const char *r2 = "GET /api/state HTTP/1.1\r\nHost: x\r\n\r\n";
    exchange(s, fd, r2, strlen(r2), out, sizeof out, "}\n");
    ASSERT_TRUE(!strncmp(out, "HTTP/1.1 503 ", 13));
    ASSERT_OK(kagi_serve_publish(s, "{\"seq\": 1}", 10));
    exchange(s, fd, r2, strlen(r2), out, sizeof out, "{\"seq\": 1}");
    ASSERT_TRUE(!strncmp(out, "HTTP/1.1 200 OK\r\n", 17));
    ASSERT_TRUE(strstr(out, "Content-Type: application/json\r\nContent-Length: 10\r\n") != NULL);
    /* refusals: traversal, a missing file, POST, a body, an old version */
    const char *bad[][2] = {
        {"GET /../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 404 "},
        {"GET /%2e%2e/etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 404 "},
        {"GET /missing.js HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 404 "},
        {"POST /api/state HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", "HTTP/1.1 405 "},
        {"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n", "HTTP/1.1 501 "},
        {"GET / HTTP/2.0\r\nHost: x\r\n\r\n", "HTTP/1.1 505 "},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int c = connect_to(kagi_serve_url(s));
        exchange(s, c, bad[i][0], strlen(bad[i][0]), out, sizeof out, "}\n");
        if (strncmp(out, bad[i][1], strlen(bad[i][1])))
            T_FAIL("%.30s...: got %.40s, want %s", bad[i][0], out, bad[i][1]);
        close(c);
    }
    /* a head over the limit: 431, connection closed */
    int c = connect_to(kagi_serve_url(s));
    char big[2048];
    memset(big, 'a', sizeof big);
    memcpy(big, "GET / HTTP/1.1\r\nX: ", 19);
    exchange(s, c, big, sizeof big, out, sizeof out, "}\n");
    ASSERT_TRUE(!strncmp(out, "HTTP/1.1 431 ", 13));
    close(c);
    /* the stream: the current state at once, then each published one */
    int st = connect_to(kagi_serve_url(s));
    const char *r3 = "GET /api/stream HTTP/1.1\r\nHost: x\r\n\r\n";
    exchange(s, st, r3, strlen(r3), out, sizeof out, "data: {\"seq\": 1}\n\n");
    ASSERT_TRUE(strstr(out, "Content-Type: text/event-stream\r\n") != NULL);
    ASSERT_TRUE(strstr(out, "event: state\ndata: {\"seq\": 1}\n\n") != NULL);
    ASSERT_OK(kagi_serve_publish(s, "{\"seq\": 2}", 10));
    exchange(s, st, "", 0, out, sizeof out, "data: {\"seq\": 2}\n\n");
    ASSERT_TRUE(!strcmp(out, "event: state\ndata: {\"seq\": 2}\n\n"));
    /* connections over the cap are refused at once: 4 taken (fd, st and
     * two more), the fifth gets 503 */
    int c3 = connect_to(kagi_serve_url(s)), c4 = connect_to(kagi_serve_url(s));
    int c5 = connect_to(kagi_serve_url(s));
    exchange(s, c5, "", 0, out, sizeof out, "\r\n\r\n");
    ASSERT_TRUE(!strncmp(out, "HTTP/1.1 503 ", 13));
    close(c3);
    close(c4);
    close(c5);
    close(st);
    close(fd);
    kagi_serve_free(s);
    unlink(p);
    rmdir(dir);
}

/* A client that sends half a request and stalls is closed after the
 * timeout; one that sends nothing at all too. */
static void server_closes_slow_clients(void)
{
    kagi_serve_opts o;
    memset(&o, 0, sizeof o);
    o.listen = "127.0.0.1:0";
    o.timeout_s = 1;
    kagi_serve *s = NULL;
    ASSERT_OK(kagi_serve_new(&o, &s));
    if (!s) return;
    int slow = connect_to(kagi_serve_url(s)), mute = connect_to(kagi_serve_url(s));
    const char *half = "GET /api/state HTTP/1.1\r\nHost: x\r\n";
    ASSERT_TRUE(send(slow, half, strlen(half), MSG_NOSIGNAL) == (ssize_t)strlen(half));
    ASSERT_OK(kagi_serve_poll(s, 300));
    char b[256];
    ASSERT_TRUE(recv(slow, b, sizeof b, MSG_DONTWAIT) < 0 && errno == EAGAIN); /* still open */
    ASSERT_OK(kagi_serve_poll(s, 1200));
    ASSERT_OK(kagi_serve_poll(s, 100));
    ASSERT_EQ(recv(slow, b, sizeof b, MSG_DONTWAIT), 0); /* closed, nothing sent */
    ASSERT_EQ(recv(mute, b, sizeof b, MSG_DONTWAIT), 0);
    /* HEAD: the head of the answer without its body */
    int h = connect_to(kagi_serve_url(s));
    ASSERT_OK(kagi_serve_publish(s, "{\"seq\": 3}", 10));
    const char *req = "HEAD /api/state HTTP/1.1\r\nHost: x\r\n\r\n";
    static char out[4096];
    exchange(s, h, req, strlen(req), out, sizeof out, "\r\n\r\n");
    ASSERT_TRUE(!strncmp(out, "HTTP/1.1 200 OK\r\n", 17));
    ASSERT_TRUE(strstr(out, "Content-Length: 10\r\n") != NULL);
    ASSERT_TRUE(strstr(out, "seq") == NULL);
    close(h);
    close(slow);
    close(mute);
    kagi_serve_free(s);
}

static void server_refuses_bad_addresses(void)
{
    kagi_serve_opts o;
    memset(&o, 0, sizeof o);
    kagi_serve *s = NULL;
    const char *bad[] = {"127.0.0.1", "127.0.0.1:x", "127.0.0.1:70000", ":80", "[::1]80",
                         "no.such.host.invalid:80"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        o.listen = bad[i];
        int rc = kagi_serve_new(&o, &s);
        if (rc != KAGI_ERR_ARG) T_FAIL("'%s': rc %d, want KAGI_ERR_ARG", bad[i], rc);
        ASSERT_TRUE(s == NULL);
        kagi_serve_free(s);
    }
    /* a folder without index.html is no web folder */
    static char out[PATH_MAX];
    ASSERT_EQ(kagi_serve_find_web("/", out, sizeof out), KAGI_ERR_IO);
    ASSERT_TRUE(strstr(kagi_errdetail(), "index.html") != NULL);
}

T_MAIN(T(resolve_serves_files_under_root_only), T(content_types_by_extension),
       T(sse_frames_one_data_line_per_line), T(live_state_of_a_tiny_network_matches_hand_figures),
       T(server_answers_files_state_and_stream), T(server_closes_slow_clients),
       T(server_refuses_bad_addresses))
