/* KME parsing: the configuration file, the HTTP/1.1 framing and the ETSI
 * GS QKD 014 requests (path, query, JSON body) with their exact errors. */
#include <sys/stat.h>
#include <unistd.h>

#include "kagi/error.h"
#include "kagi/auth.h"
#include "kagi/kme.h"
#include "t.h"

static const char good_cfg[] =
    "# a KME\n"
    "kme_id = KME_A\n"
    "listen = 127.0.0.1:8443   # port\n"
    "cert = \"/etc/kagi/kme.pem\"\n"
    "key = /etc/kagi/kme.key\n"
    "client_ca = /etc/kagi/ca.pem\n"
    "store = /var/lib/kagi/kme.db\n"
    "store_key = /etc/kagi/store.key\n"
    "key_size = 512\n"
    "max_sae_id_count = 3\n"
    "sae = SAE_1\n"
    "sae = SAE_2@KME_B\n"
    "\n"
    "[link loop]\n"
    "peer = KME_A\n"
    "source = sim\n"
    "distance_km = 50\n"
    "speedup = 100\n"
    "[link ab]\n"
    "peer = KME_B\n"
    "peer_address = kme-b.example:8443\n"
    "source = dir\n"
    "dir = /var/spool/kagi/ab\n";

static void test_config_parses_the_documented_keys(void)
{
    kagi_kme_config *c = NULL;
    ASSERT_OK(kagi_kme_config_parse(good_cfg, sizeof good_cfg - 1, "kme.conf", &c));
    if (!c) return;
    ASSERT_TRUE(!strcmp(c->kme_id, "KME_A"));
    ASSERT_TRUE(!strcmp(c->listen_host, "127.0.0.1"));
    ASSERT_EQ(c->port, 8443);
    ASSERT_TRUE(!strcmp(c->cert, "/etc/kagi/kme.pem"));
    ASSERT_EQ(c->key_size, 512);
    ASSERT_EQ(c->min_key_size, 64);        /* defaults */
    ASSERT_EQ(c->max_key_size, 8192);
    ASSERT_EQ(c->max_keys_per_request, 128);
    ASSERT_EQ(c->max_sae_id_count, 3);
    ASSERT_EQ(c->body_limit, 65536);
    ASSERT_EQ(c->timeout_s, 10);
    ASSERT_EQ(c->commit_interval_us, 0); /* paced by the fsync time */
    ASSERT_EQ(c->commit_pacing, 1);
    ASSERT_EQ(c->n_saes, 2);
    ASSERT_TRUE(!strcmp(c->saes[0].kme, "KME_A")); /* no @: this KME */
    ASSERT_TRUE(!strcmp(c->saes[1].kme, "KME_B"));
    ASSERT_TRUE(kagi_kme_config_sae(c, "SAE_2", 5) == &c->saes[1]);
    ASSERT_TRUE(kagi_kme_config_sae(c, "SAE_3", 5) == NULL);
    ASSERT_EQ(c->n_links, 2);
    ASSERT_EQ(c->links[0].source, KAGI_SOURCE_SIM);
    ASSERT_NEAR(c->links[0].model.distance_km, 50, 0);
    ASSERT_NEAR(c->links[0].speedup, 100, 0);
    ASSERT_EQ(c->links[1].source, KAGI_SOURCE_DIR);
    ASSERT_TRUE(!strcmp(c->links[1].dir, "/var/spool/kagi/ab"));
    /* The simulated device runs at the model's rate: the same number as
       kagi_keyrate for the link (asymptotic BB84 with decoys). */
    double bps = 0;
    ASSERT_OK(kagi_kme_link_rate(&c->links[0], &bps));
    kagi_rate r;
    ASSERT_OK(kagi_keyrate(KAGI_PROTO_BB84_DECOY, KAGI_DECOYS_INFINITE, &c->links[0].model, 0, &r));
    ASSERT_NEAR(bps, r.bps, 0);
    ASSERT_TRUE(bps > 1e3);
    kagi_kme_config_free(c);
}

static void expect_cfg_error(const char *text, const char *want)
{
    kagi_kme_config *c = NULL;
    int e = kagi_kme_config_parse(text, strlen(text), "k.conf", &c);
    if (e == KAGI_OK) {
        T_FAIL("accepted: %s", text);
        kagi_kme_config_free(c);
        return;
    }
    if (!strstr(kagi_errdetail(), want)) T_FAIL("detail '%s' lacks '%s'", kagi_errdetail(), want);
    ASSERT_TRUE(c == NULL);
}

/* good_cfg with before and after around it must fail with want. */
static void expect_cfg_error_around(const char *before, const char *after, const char *want)
{
    char buf[2048];
    snprintf(buf, sizeof buf, "%s%s%s", before, good_cfg, after);
    expect_cfg_error(buf, want);
}

static void test_config_routes_and_peer_addresses(void)
{
    char buf[2048];
    snprintf(buf, sizeof buf, "route = KME_D via KME_B , KME_C,KME_D\n%s", good_cfg);
    kagi_kme_config *c = NULL;
    ASSERT_OK(kagi_kme_config_parse(buf, strlen(buf), "k.conf", &c));
    if (!c) return;
    ASSERT_EQ(c->n_routes, 1);
    ASSERT_TRUE(!strcmp(c->routes[0].dest, "KME_D"));
    ASSERT_EQ(c->routes[0].n_hops, 3);
    ASSERT_TRUE(!strcmp(c->routes[0].hops[0], "KME_B"));
    ASSERT_TRUE(!strcmp(c->routes[0].hops[1], "KME_C"));
    ASSERT_TRUE(!strcmp(c->routes[0].hops[2], "KME_D"));
    ASSERT_TRUE(!strcmp(c->links[1].peer_host, "kme-b.example"));
    ASSERT_EQ(c->links[1].peer_port, 8443);
    ASSERT_TRUE(c->links[0].peer_host[0] == '\0'); /* loopback: no peer */
    kagi_kme_config_free(c);
}

/* commit_interval_us: "auto" (the default) paces commits by the fsync
 * time; a number is a fixed window and turns pacing off. */
static void test_config_commit_interval(void)
{
    const char *vals[] = {"500", "0", "auto"};
    const unsigned want_us[] = {500, 0, 0};
    const int want_pace[] = {0, 0, 1};
    for (int i = 0; i < 3; i++) {
        char buf[2048];
        snprintf(buf, sizeof buf, "commit_interval_us = %s\n%s", vals[i], good_cfg);
        kagi_kme_config *c = NULL;
        ASSERT_OK(kagi_kme_config_parse(buf, strlen(buf), "k.conf", &c));
        if (!c) return;
        ASSERT_EQ(c->commit_interval_us, want_us[i]);
        ASSERT_EQ(c->commit_pacing, want_pace[i]);
        kagi_kme_config_free(c);
    }
    expect_cfg_error_around("commit_interval_us = fast\n", "", "k.conf:1: commit_interval_us: 'fast' is not a whole number");
    expect_cfg_error_around("commit_interval_us = 2000000\n", "", "2000000 is outside 0..1000000");
}

static void test_config_errors_name_file_line_and_key(void)
{
    char buf[2048];
    expect_cfg_error("kme_id = A\nfrobnicate = 1\n", "k.conf:2: frobnicate: unknown key");
    expect_cfg_error("kme_id = A\nkey_size = 12x\n", "k.conf:2: key_size: '12x' is not a whole number");
    expect_cfg_error("kme_id = A B\n", "k.conf:1: kme_id: 'A B' is not a valid id");
    expect_cfg_error("just words\n", "k.conf:1: expected \"key = value\"");
    expect_cfg_error("[section]\n", "expected a section \"[link NAME]\"");
    expect_cfg_error("kme_id = A\n", "listen is missing");
    snprintf(buf, sizeof buf, "%s", good_cfg);
    memcpy(strstr(buf, "key_size = 512"), "key_size = 100", 14);
    expect_cfg_error(buf, "multiples of 8");
    expect_cfg_error_around("", "min_key_size = 1024\n", "[link] section"); /* after [link ab]: a link key */
    expect_cfg_error_around("min_key_size = 1024\n", "", "min_key_size 1024 <= key_size 512");
    expect_cfg_error_around("sae = SAE_1\n", "", "SAE SAE_1 listed twice");
    expect_cfg_error_around("", "[link x]\nsource = sim\n", "link x: peer is missing");
    expect_cfg_error_around("", "[link far]\npeer = KME_A\nsource = sim\ndistance_km = 900\n",
                            "link far: the model gives no key at 900 km");
    expect_cfg_error_around("", "[link d]\npeer = KME_C\npeer_address = h:1\nsource = dir\n", "link d: source dir needs dir");
    expect_cfg_error_around("", "[link loop]\npeer = KME_A\n", "link loop defined twice");
    /* peers and routes (docs/peer.md) */
    expect_cfg_error_around("", "[link bc]\npeer = KME_C\n", "link bc: peer_address is missing");
    expect_cfg_error_around("", "[link bc]\npeer = KME_C\npeer_address = h:1\nsource = sim\n",
                            "link bc: source sim draws key at one end only");
    expect_cfg_error_around("", "[link bc]\npeer = KME_C\npeer_address = nohost\n", "'nohost' is not HOST:PORT");
    expect_cfg_error_around("", "[link a234567890123456789012345678901]\npeer = KME_C\npeer_address = h:1\n",
                            "at most 30 characters");
    expect_cfg_error_around("route = KME_D via KME_B,KME_C\n", "", "the path must end at KME_D");
    expect_cfg_error_around("route = KME_D KME_B\n", "", "expected \"DEST via");
    expect_cfg_error_around("route = KME_D via KME_C,KME_D\n", "", "no link reaches its first hop KME_C");
    expect_cfg_error_around("route = KME_D via KME_B,KME_A,KME_D\n", "", "passes through this KME");
    expect_cfg_error_around("route = KME_D via KME_B,KME_B,KME_D\n", "", "KME_B appears twice");
    expect_cfg_error_around("route = KME_D via KME_B,KME_D\nroute = KME_D via KME_B,KME_D\n", "",
                            "a second route to KME_D");
    expect_cfg_error_around("sae = KME_A\n", "", "SAE KME_A has the id of this KME");
}

static const char get_enc[] = "GET /api/v1/keys/SAE_B/enc_keys?number=2&size=512 HTTP/1.1\r\nHost: k\r\n\r\n";

static void test_http_parses_one_request_and_keeps_the_next(void)
{
    char buf[512];
    const char *post = "POST /api/v1/keys/SAE_A/dec_keys HTTP/1.1\r\ncontent-length: 5\r\n"
                       "Connection: close\r\n\r\n{\"a\"}";
    int n = snprintf(buf, sizeof buf, "%s%s", get_enc, post);
    kagi_http_req h;
    const char *why;
    ASSERT_EQ(kagi_http_parse((const uint8_t *)buf, (size_t)n, 8192, 65536, &h, &why), 0);
    ASSERT_EQ(h.method, KAGI_HTTP_GET);
    ASSERT_EQ(h.total, sizeof get_enc - 1);
    ASSERT_EQ(h.path_len, strlen("/api/v1/keys/SAE_B/enc_keys"));
    ASSERT_TRUE(h.query && h.query_len == strlen("number=2&size=512") && !memcmp(h.query, "number=2", 8));
    ASSERT_EQ(h.keep_alive, 1);
    ASSERT_EQ(h.body_len, 0);
    const uint8_t *next = (const uint8_t *)buf + h.total;
    ASSERT_EQ(kagi_http_parse(next, (size_t)n - h.total, 8192, 65536, &h, &why), 0);
    ASSERT_EQ(h.method, KAGI_HTTP_POST);
    ASSERT_EQ(h.body_len, 5);
    ASSERT_TRUE(h.body && !memcmp(h.body, "{\"a\"}", 5));
    ASSERT_EQ(h.keep_alive, 0);
    ASSERT_EQ(h.query, NULL);
    /* Every prefix is incomplete, never an error. */
    int bad = 0;
    for (size_t k = 0; k < strlen(post); k++) bad += kagi_http_parse((const uint8_t *)post, k, 8192, 65536, &h, &why) != 1;
    ASSERT_EQ(bad, 0);
}

static void expect_http(const char *req, int code, const char *want)
{
    kagi_http_req h;
    const char *why = "";
    int st = kagi_http_parse((const uint8_t *)req, strlen(req), 256, 64, &h, &why);
    if (st != code || !strstr(why, want)) T_FAIL("%.40s...: %d '%s', expected %d '%s'", req, st, why, code, want);
}

static void test_http_refuses_what_is_outside_the_subset(void)
{
    expect_http("GET /a HTTP/1.1\nHost: x\r\n\r\n", 400, "bare LF");
    expect_http("GET /a HTTP/2\r\n\r\n", 505, "HTTP/1.1");
    expect_http("GET http://x/a HTTP/1.1\r\n\r\n", 400, "must be a path");
    expect_http("GET /a b HTTP/1.1\r\n\r\n", 505, "");
    expect_http("GET /a\x01 HTTP/1.1\r\n\r\n", 400, "invalid character");
    expect_http("POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 501, "Content-Length");
    expect_http("POST /a HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400, "conflicting");
    expect_http("POST /a HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400, "malformed Content-Length");
    expect_http("POST /a HTTP/1.1\r\nContent-Length: 65\r\n\r\n", 413, "too large");
    expect_http("GET /a HTTP/1.1\r\nX: 1\r\n folded\r\n\r\n", 400, "folding");
    expect_http("GET /a HTTP/1.1\r\nBad Name: 1\r\n\r\n", 400, "header name");
    expect_http("GET /a HTTP/1.1\r\nExpect: magic\r\n\r\n", 417, "expectation");
    char big[400];
    memset(big, 'a', sizeof big);
    memcpy(big, "GET /", 5);
    big[sizeof big - 1] = '\0';
    expect_http(big, 431, "too large");
    kagi_http_req h;
    const char *why;
    const char *cont = "POST /a HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n";
    ASSERT_EQ(kagi_http_parse((const uint8_t *)cont, strlen(cont), 256, 64, &h, &why), 1);
    ASSERT_EQ(h.expect_continue, 1);
    ASSERT_EQ(h.head_len, strlen(cont));
}

static const kagi_etsi_limits lim = {256, 64, 1024, 8, 2};

static int parse(kagi_etsi_req *r, kagi_etsi_method m, const char *path, const char *query, const char *body)
{
    return kagi_etsi_parse(r, m, path, strlen(path), query, query ? strlen(query) : 0, (const uint8_t *)body,
                           body ? strlen(body) : 0, &lim);
}

static void test_etsi_requests_parse_to_their_fields(void)
{
    static kagi_etsi_req r;
    ASSERT_EQ(parse(&r, KAGI_HTTP_GET, "/api/v1/keys/SAE_B/status", NULL, NULL), 0);
    ASSERT_EQ(r.call, KAGI_ETSI_STATUS);
    ASSERT_TRUE(!strcmp(r.sae, "SAE_B"));
    ASSERT_EQ(parse(&r, KAGI_HTTP_GET, "/api/v1/keys/SAE_B/enc_keys", NULL, NULL), 0);
    ASSERT_EQ(r.number, 1);     /* defaults: one key of key_size */
    ASSERT_EQ(r.size, 256);
    ASSERT_EQ(parse(&r, KAGI_HTTP_GET, "/api/v1/keys/SAE_B/enc_keys", "size=512&number=3", NULL), 0);
    ASSERT_EQ(r.number, 3);
    ASSERT_EQ(r.size, 512);
    ASSERT_EQ(parse(&r, KAGI_HTTP_POST, "/api/v1/keys/SAE_B/enc_keys", NULL,
                    "{\"number\":2,\"size\":128,\"additional_slave_SAE_IDs\":[\"C\",\"D\"],"
                    "\"extension_mandatory\":[],\"extension_optional\":[{\"x\":1}]}"), 0);
    ASSERT_EQ(r.number, 2);
    ASSERT_EQ(r.size, 128);
    ASSERT_EQ(r.n_extra, 2);
    ASSERT_TRUE(!strcmp(r.extra[1], "D"));
    ASSERT_EQ(parse(&r, KAGI_HTTP_GET, "/api/v1/keys/SAE_A/dec_keys", "key_ID=550E8400-e29b-41d4-a716-446655440000", NULL), 0);
    ASSERT_EQ(r.call, KAGI_ETSI_DEC_KEYS);
    ASSERT_EQ(r.n_ids, 1);
    ASSERT_EQ(r.ids[0][0], 0x55);
    ASSERT_EQ(r.ids[0][15], 0x00);
    ASSERT_EQ(parse(&r, KAGI_HTTP_POST, "/api/v1/keys/SAE_A/dec_keys", NULL,
                    "{\"key_IDs\":[{\"key_ID\":\"550e8400-e29b-41d4-a716-446655440000\"},"
                    "{\"key_ID\":\"bc490419-7d60-487f-adc1-4ddcc177c139\",\"key_ID_extension\":{}}],"
                    "\"key_IDs_extension\":{}}"), 0);
    ASSERT_EQ(r.n_ids, 2);
    ASSERT_EQ(r.ids[1][0], 0xbc);
}

static void expect_etsi(kagi_etsi_method m, const char *path, const char *query, const char *body, int code,
                        const char *msg)
{
    static kagi_etsi_req r;
    int st = parse(&r, m, path, query, body);
    if (st != code || strcmp(r.message, msg) != 0)
        T_FAIL("%s %s: %d '%s', expected %d '%s'", path, body ? body : query ? query : "", st, r.message, code, msg);
}

static void test_etsi_errors_are_exact(void)
{
    const char *enc = "/api/v1/keys/SAE_B/enc_keys", *dec = "/api/v1/keys/SAE_A/dec_keys";
    expect_etsi(KAGI_HTTP_GET, "/api/v1/keys/SAE_B/other", NULL, NULL, 404, "not found");
    expect_etsi(KAGI_HTTP_GET, "/api/v2/keys/SAE_B/status", NULL, NULL, 404, "not found");
    expect_etsi(KAGI_HTTP_GET, "/api/v1/keys/SA%20E/status", NULL, NULL, 400, "slave_SAE_ID is not a valid SAE ID");
    expect_etsi(KAGI_HTTP_POST, "/api/v1/keys/SAE_B/status", NULL, "{}", 405, "method not allowed");
    expect_etsi(KAGI_HTTP_OTHER, enc, NULL, NULL, 405, "method not allowed");
    expect_etsi(KAGI_HTTP_GET, enc, "size=100", NULL, 400, "size shall be a multiple of 8");
    expect_etsi(KAGI_HTTP_GET, enc, "size=2048", NULL, 400, "size 2048 is outside min_key_size..max_key_size (64..1024)");
    expect_etsi(KAGI_HTTP_GET, enc, "number=9", NULL, 400, "number 9 exceeds max_key_per_request (8)");
    expect_etsi(KAGI_HTTP_GET, enc, "number=-1", NULL, 400, "query parameter number is not a whole number");
    expect_etsi(KAGI_HTTP_GET, enc, "number=1&number=2", NULL, 400, "query parameter number given twice");
    expect_etsi(KAGI_HTTP_GET, enc, "key_ID=x", NULL, 400, "unknown query parameter 'key_ID'");
    expect_etsi(KAGI_HTTP_GET, enc, "size=%32%35%36", NULL, 400, "percent-encoded query parameters are not accepted");
    expect_etsi(KAGI_HTTP_POST, enc, NULL, "", 400, "request body is empty (a JSON object was expected)");
    expect_etsi(KAGI_HTTP_POST, enc, NULL, "[1]", 400, "request body shall be a JSON object");
    expect_etsi(KAGI_HTTP_POST, enc, NULL, "{\"number\":1.5}", 400, "number shall be an integer");
    expect_etsi(KAGI_HTTP_POST, enc, NULL, "{\"number\":0}", 400, "number shall be at least 1");
    expect_etsi(KAGI_HTTP_POST, enc, NULL, "{\"size\":true}", 400, "size shall be an integer");
    expect_etsi(KAGI_HTTP_POST, enc, NULL, "{\"additional_slave_SAE_IDs\":\"C\"}", 400,
                "additional_slave_SAE_IDs shall be an array of strings");
    expect_etsi(KAGI_HTTP_POST, enc, NULL, "{\"additional_slave_SAE_IDs\":[\"C\",\"C\"]}", 400,
                "additional_slave_SAE_IDs lists C twice");
    expect_etsi(KAGI_HTTP_POST, enc, NULL, "{\"additional_slave_SAE_IDs\":[\"C\",\"D\",\"E\"]}", 400,
                "additional_slave_SAE_IDs has 3 entries, max_SAE_ID_count is 2");
    expect_etsi(KAGI_HTTP_POST, enc, NULL, "{\"additional_slave_SAE_IDs\":[\"a b\"]}", 400,
                "additional_slave_SAE_IDs[0] is not a valid SAE ID");
    expect_etsi(KAGI_HTTP_POST, enc, NULL, "{\"extension_mandatory\":[{\"route\":1},{\"qos\":2}]}", 400,
                "not all extension_mandatory parameters are supported");
    expect_etsi(KAGI_HTTP_POST, enc, NULL, "{\"extension_mandatory\":{}}", 400,
                "extension_mandatory shall be an array of objects");
    expect_etsi(KAGI_HTTP_POST, enc, NULL, "{\"number\":1,\"x\":2}", 400, "unknown field 'x'");
    expect_etsi(KAGI_HTTP_POST, enc, "number=1", "{}", 400, "a POST request takes its parameters in the body");
    expect_etsi(KAGI_HTTP_GET, dec, NULL, NULL, 400, "key_ID query parameter is missing");
    expect_etsi(KAGI_HTTP_POST, dec, NULL, "{\"key_IDs\":[]}", 400, "key_IDs is empty");
    expect_etsi(KAGI_HTTP_POST, dec, NULL, "{\"key_IDs\":[{\"key_ID\":1}]}", 400,
                "key_IDs[0].key_ID is missing or not a string");
    expect_etsi(KAGI_HTTP_POST, dec, NULL, "{\"key_IDs\":[{\"id\":\"x\"}]}", 400, "unknown field 'key_IDs[0].id'");
    static kagi_etsi_req r;
    ASSERT_EQ(parse(&r, KAGI_HTTP_POST, enc, NULL, "{\"extension_mandatory\":[{\"route\":1},{\"qos\":2}]}"), 400);
    ASSERT_EQ(r.n_unsupported, 2);
    ASSERT_TRUE(!strcmp(r.unsupported[0], "route") && !strcmp(r.unsupported[1], "qos"));
    ASSERT_EQ(parse(&r, KAGI_HTTP_POST, enc, NULL, "{\"number\":1,"), 400);
    ASSERT_TRUE(strstr(r.message, "request body is not valid JSON") == r.message);
    ASSERT_EQ(parse(&r, KAGI_HTTP_POST, enc, NULL, "{\"size\":64,\"size\":128}"), 400);
    ASSERT_TRUE(strstr(r.message, "duplicate") != NULL);
}


/* The common enc_keys bodies skip jansson (etsi014.c, kagi__enc_fast):
 * what it takes parses as before, and everything at its edges still gets
 * jansson's answer. */
static void test_etsi_enc_body_fast_path_matches_jansson(void)
{
    const char *enc = "/api/v1/keys/SAE_B/enc_keys";
    static kagi_etsi_req r;
    ASSERT_EQ(parse(&r, KAGI_HTTP_POST, enc, NULL, " {\n\"size\" : 128 ,\t\"number\":3 }\r\n"), 0);
    ASSERT_EQ(r.number, 3);
    ASSERT_EQ(r.size, 128);
    ASSERT_EQ(parse(&r, KAGI_HTTP_POST, enc, NULL, "{}"), 0);
    ASSERT_EQ(r.number, 1);
    ASSERT_EQ(r.size, 256);
    ASSERT_EQ(parse(&r, KAGI_HTTP_POST, enc, NULL, "{\"number\":1,\"size\":256}"), 0);
    ASSERT_EQ(r.number, 1);
    ASSERT_EQ(r.size, 256);
    expect_etsi(KAGI_HTTP_POST, enc, NULL, "{\"number\":9,\"size\":100}", 400, "number 9 exceeds max_key_per_request (8)");
    expect_etsi(KAGI_HTTP_POST, enc, NULL, "{\"size\":100,\"number\":9}", 400, "size shall be a multiple of 8");
    expect_etsi(KAGI_HTTP_POST, enc, NULL, "{\"number\":1000000000}", 400,
                "number 1000000000 exceeds max_key_per_request (8)");
    expect_etsi(KAGI_HTTP_POST, enc, NULL, "{\"number\":-1}", 400, "number shall be at least 1");
    expect_etsi(KAGI_HTTP_POST, enc, NULL, "{\"number\":1e0}", 400, "number shall be an integer");
    expect_etsi(KAGI_HTTP_POST, enc, NULL, "{\"number\":1,\"Size\":2}", 400, "unknown field 'Size'");
    const char *invalid[] = {"{\"number\":01}", "{\"number\":1}x", "{\"number\":1,}", "{\"number\" 1}",
                             "{\"number\":}", "{\"number\":1", "{,}", "{\"size\":64,\"size\":64}"};
    for (size_t i = 0; i < sizeof invalid / sizeof *invalid; i++) {
        ASSERT_EQ(parse(&r, KAGI_HTTP_POST, enc, NULL, invalid[i]), 400);
        ASSERT_TRUE(strstr(r.message, "request body is not valid JSON") == r.message);
    }
}

static const char peer_otp[] =
    "{\"mode\":\"otp\",\"link\":\"bc\",\"master\":\"SAE_A\",\"slaves\":[\"SAE_C\"],\"path\":[\"KME_C\"],"
    "\"size\":4,\"keys\":[{\"key_ID\":\"0b8a3f8e-7a6f-4c8e-9d41-0f6c1e6b2a10\",\"block\":2,\"offset\":96,"
    "\"ct\":\"AQIDBA==\",\"tag\":\"000102030405060708090a0b0c0d0e0f\"}]}";

static void expect_peer_error(const char *body, const char *want)
{
    kagi_peer_msg m;
    int e = kagi_peer_parse(&m, (const uint8_t *)body, strlen(body));
    ASSERT_EQ(e, KAGI_ERR_FORMAT);
    if (!strstr(m.message, want)) {
        printf("  peer message error '%s' lacks '%s'\n", m.message, want);
        ASSERT_TRUE(0);
    }
}

/* The peer message: fields as docs/peer.md gives them, strict refusals,
 * and the tag: poly_H over GF(2^128) of the documented byte layout, built
 * here by hand, XOR the pad; any field the receiver acts on changes it. */
static void test_peer_message_parses_and_tags_bind_every_field(void)
{
    kagi_peer_msg m;
    ASSERT_OK(kagi_peer_parse(&m, (const uint8_t *)peer_otp, sizeof peer_otp - 1));
    ASSERT_EQ(m.mode, KAGI_PEER_OTP);
    ASSERT_TRUE(!strcmp(m.link, "bc") && !strcmp(m.master, "SAE_A") && !strcmp(m.slaves[0], "SAE_C"));
    ASSERT_EQ(m.n_path, 1);
    ASSERT_EQ(m.size, 4);
    ASSERT_EQ(m.n_keys, 1);
    ASSERT_EQ(m.keys[0].block, 2);
    ASSERT_EQ(m.keys[0].off, 96);
    ASSERT_TRUE(m.ct && m.ct[0] == 1 && m.ct[3] == 4);
    ASSERT_EQ(m.keys[0].tag[15], 15);
    /* the tag, from the documented layout */
    uint8_t mk[KAGI_PEER_MAC_BYTES], b[256], tag[16];
    for (int i = 0; i < KAGI_PEER_MAC_BYTES; i++) mk[i] = (uint8_t)(0x5a ^ (i * 29));
    size_t n = 0;
    memcpy(b, "kagi-peer-v1", 12);
    n = 12;
    memcpy(b + n, m.keys[0].id, 16);
    n += 16;
    const char *f[] = {"bc", "SAE_A"};
    for (int i = 0; i < 2; i++) {
        b[n++] = (uint8_t)strlen(f[i]);
        memcpy(b + n, f[i], strlen(f[i]));
        n += strlen(f[i]);
    }
    b[n++] = 1, b[n++] = 5, memcpy(b + n, "SAE_C", 5), n += 5;
    b[n++] = 1, b[n++] = 5, memcpy(b + n, "KME_C", 5), n += 5;
    b[n++] = 4, b[n++] = 0, b[n++] = 0, b[n++] = 0;
    memcpy(b + n, "\1\2\3\4", 4);
    n += 4;
    uint64_t h[2], out[2];
    memcpy(h, mk, 16);
    kagi_polyhash128(h, b, n, out);
    uint8_t want[16];
    memcpy(want, out, 16);
    for (int i = 0; i < 16; i++) want[i] ^= mk[16 + i];
    kagi_peer_tag(&m, 0, mk, tag);
    ASSERT_TRUE(!memcmp(tag, want, 16));
    memcpy(m.keys[0].tag, tag, 16);
    ASSERT_TRUE(kagi_peer_tag_ok(&m, 0, mk));
    /* every field is bound */
    m.ct[2] ^= 0x80;
    ASSERT_TRUE(!kagi_peer_tag_ok(&m, 0, mk));
    m.ct[2] ^= 0x80;
    m.master[4] = 'B';
    ASSERT_TRUE(!kagi_peer_tag_ok(&m, 0, mk));
    m.master[4] = 'A';
    m.slaves[0][4] = 'D';
    ASSERT_TRUE(!kagi_peer_tag_ok(&m, 0, mk));
    m.slaves[0][4] = 'C';
    m.keys[0].id[5] ^= 1;
    ASSERT_TRUE(!kagi_peer_tag_ok(&m, 0, mk));
    m.keys[0].id[5] ^= 1;
    ASSERT_TRUE(kagi_peer_tag_ok(&m, 0, mk));
    mk[20] ^= 1; /* another pad */
    ASSERT_TRUE(!kagi_peer_tag_ok(&m, 0, mk));
    /* written back, it parses to the same message */
    char *w = NULL;
    size_t wl = 0;
    ASSERT_OK(kagi_peer_write(&m, &w, &wl));
    kagi_peer_msg m2;
    ASSERT_OK(kagi_peer_parse(&m2, (const uint8_t *)w, wl));
    ASSERT_TRUE(m2.n_keys == 1 && !memcmp(m2.keys[0].tag, tag, 16) && !memcmp(m2.ct, m.ct, 4) &&
                m2.keys[0].off == 96);
    free(w);
    kagi_peer_msg_clear(&m2);
    kagi_peer_msg_clear(&m);
    ASSERT_TRUE(m.ct == NULL && m.keys == NULL);

    expect_peer_error("[]", "not a JSON object");
    expect_peer_error("{\"mode\":\"direct\",\"x\":1}", "unknown field \"x\"");
    expect_peer_error("{\"mode\":\"plain\"}", "mode must be");
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", peer_otp);
    memcpy(strstr(buf, "AQIDBA=="), "AQIDBAU=", 8); /* 5 bytes, not 4 */
    expect_peer_error(buf, "keys[0]: ct must be base64 of 4 bytes");
    snprintf(buf, sizeof buf, "%s", peer_otp);
    memcpy(strstr(buf, "\"size\":4"), "\"size\":0", 8);
    expect_peer_error(buf, "size must be a whole number of bytes");
    snprintf(buf, sizeof buf, "%s", peer_otp);
    memcpy(strstr(buf, "SAE_C"), "SAE C", 5);
    expect_peer_error(buf, "slaves is not a valid id");
    expect_peer_error("{\"mode\":\"direct\",\"link\":\"ab\",\"master\":\"A\",\"slaves\":[\"B\"],\"path\":[\"K\"],"
                      "\"size\":1,\"keys\":[{\"key_ID\":\"0b8a3f8e-7a6f-4c8e-9d41-0f6c1e6b2a10\",\"block\":1,"
                      "\"offset\":5},{\"key_ID\":\"1b8a3f8e-7a6f-4c8e-9d41-0f6c1e6b2a10\",\"block\":1,\"offset\":5}]}",
                      "keys[1] is not after keys[0]");
}

static void test_pki_makes_a_ca_and_leaf_certificates(void)
{
    char dir[] = "/tmp/kagi-pki.XXXXXX";
    ASSERT_TRUE(mkdtemp(dir) != NULL);
    const char *names[] = {"KME_A", "SAE_1"};
    ASSERT_OK(kagi_pki_make(dir, "test-ca", names, 2));
    char p[300], cmd[900];
    struct stat st;
    snprintf(p, sizeof p, "%s/SAE_1.key", dir);
    ASSERT_EQ(stat(p, &st), 0);
    ASSERT_EQ(st.st_mode & 0777, 0600);
    /* the openssl command verifies the chain and reads the CN */
    snprintf(cmd, sizeof cmd, "openssl verify -CAfile %s/ca.pem -purpose sslclient %s/SAE_1.pem >/dev/null 2>&1 && "
             "openssl x509 -in %s/SAE_1.pem -noout -subject | grep -q 'CN *= *SAE_1'", dir, dir, dir);
    ASSERT_EQ(system(cmd), 0);
    const char *bad[] = {"no spaces"};
    ASSERT_EQ(kagi_pki_make(dir, "test-ca", bad, 1), KAGI_ERR_ARG);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ASSERT_EQ(system(cmd), 0);
}

T_MAIN(T(test_config_parses_the_documented_keys), T(test_config_routes_and_peer_addresses),
       T(test_config_commit_interval),
       T(test_config_errors_name_file_line_and_key),
       T(test_http_parses_one_request_and_keeps_the_next), T(test_http_refuses_what_is_outside_the_subset),
       T(test_etsi_requests_parse_to_their_fields), T(test_etsi_errors_are_exact),
       T(test_etsi_enc_body_fast_path_matches_jansson),
       T(test_peer_message_parses_and_tags_bind_every_field), T(test_pki_makes_a_ca_and_leaf_certificates))
