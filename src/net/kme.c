/* The KME daemon: ETSI GS QKD 014 over HTTPS with mutual TLS.
 *
 * Threads: the main thread waits for SIGTERM/SIGINT; each worker runs an
 * epoll loop over its listening socket and its connections (non-blocking,
 * edge-triggered, OpenSSL directly, one read(2) and one write(2) per
 * request on a kept-alive connection); key operations go to the store,
 * whose committer runs them in batches and, once a batch is durable,
 * hands each finished call back to its worker through an eventfd. A key
 * is therefore never in a response before its removal from the store is
 * on disk.
 *
 * HTTP: the strict HTTP/1.1 subset of kagi_http_parse (src/net/http.c);
 * one request at a time per connection, pipelined bytes kept for the
 * next. TLS: 1.2 or 1.3, ECDHE with AEAD ciphers, a client certificate
 * required and verified against client_ca during the handshake (a client
 * without one never gets an HTTP exchange). The SAE is the certificate's
 * subject CN (exactly one CN, a valid SAE ID); a verified client that is
 * not an SAE of this KME gets 401 for everything.
 *
 * Timeouts: a connection must complete its handshake, each request, and
 * each response within timeout seconds of its last progress (a
 * slow-sending or slow-reading client is closed); idle kept-alive
 * connections are closed after the same time. */
/* accept4, SO_REUSEPORT: Linux. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "../kms/kms_internal.h"
#include "kagi/kme.h"
#include "net_internal.h"


enum { C_HANDSHAKE, C_READ, C_BUSY, C_WRITE };

struct kagi__conn {
    kagi__worker *w;
    int fd;                       /* -1 once closed (freed at the end of the loop iteration) */
    SSL *ssl;
    int state;
    int can_read, can_write;      /* edge-triggered readiness not yet used up */
    int identified;               /* 0 not yet, 1 an SAE of ours, 2 a peer KME, -1 neither */
    int close_after;              /* close once the response is out */
    int sent_continue;
    int dead;                     /* closed with a call in flight: freed when it returns */
    char sae[KAGI_SAE_ID_MAX + 1];
    char peer[64];
    double last;                  /* last progress */
    unsigned long requests;
    uint8_t *in;                  /* request bytes (and pipelined ones) */
    size_t in_len, in_cap;
    uint8_t *out;                 /* the response being written; wiped when done */
    size_t out_len, out_off;
    kagi__call *call;             /* in flight in the store */
    struct kagi__conn *prev, *next;
    struct kagi__conn *zombie;    /* next on the worker's list of closed ones */
};

struct kagi__worker {
    kagi__kme *k;
    unsigned idx;
    int ep, lfd, efd;
    int lis_on;
    pthread_t thread;
    int started;
    atomic_int stop;
    pthread_mutex_t mu;
    kagi__call *done_head, *done_tail;
    kagi__conn conns;             /* list sentinel */
    unsigned n_conns, max_conns;
    kagi__conn *zombies;          /* closed this iteration, freed at its end */
    kagi__call *free_calls;       /* reused between requests */
    unsigned n_free;
    double next_tick;
    kagi__logbuf log;
};

/* ---- responses ---- */

static const char *kagi__reason(int code)
{
    switch (code) {
    case 100: return "Continue";
    case 200: return "OK";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 413: return "Payload Too Large";
    case 417: return "Expectation Failed";
    case 431: return "Request Header Fields Too Large";
    case 501: return "Not Implemented";
    case 505: return "HTTP Version Not Supported";
    default: return "Service Unavailable";
    }
}

static void kagi__out_free(kagi__conn *c)
{
    if (c->out) {
        kagi_wipe(c->out, c->out_len);
        free(c->out);
    }
    c->out = NULL;
    c->out_len = c->out_off = 0;
}

/* Text and decimal numbers into a buffer the caller sized: the hot
 * path's responses and log lines without printf. */
static char *kagi__put(char *p, const char *t, size_t n)
{
    memcpy(p, t, n);
    return p + n;
}
#define KAGI__PUT_LIT(p, lit) kagi__put((p), (lit), sizeof(lit) - 1)
static char *kagi__put_str(char *p, const char *t) { return kagi__put(p, t, strlen(t)); }
static char *kagi__put_num(char *p, unsigned long long v)
{
    char t[24];
    int n = 0;
    do t[n++] = (char)('0' + v % 10); while (v /= 10);
    while (n) *p++ = t[--n];
    return p;
}

/* The head of a response into p (at most 256 bytes); its end. */
static char *kagi__head(char *p, const kagi__conn *c, int code, size_t len, int secret)
{
    p = KAGI__PUT_LIT(p, "HTTP/1.1 ");
    p = kagi__put_num(p, (unsigned)code);
    *p++ = ' ';
    p = kagi__put_str(p, kagi__reason(code));
    p = KAGI__PUT_LIT(p, "\r\nContent-Length: ");
    p = kagi__put_num(p, len);
    p = KAGI__PUT_LIT(p, "\r\n");
    if (len) p = KAGI__PUT_LIT(p, "Content-Type: application/json\r\n");
    if (secret) p = KAGI__PUT_LIT(p, "Cache-Control: no-store\r\n");
    if (c->close_after) p = KAGI__PUT_LIT(p, "Connection: close\r\n");
    return KAGI__PUT_LIT(p, "\r\n");
}

/* Queue a whole response (head and body in one buffer: one TLS record,
 * one write(2)). body may be NULL; secret bodies get Cache-Control. */
static void kagi__respond(kagi__conn *c, int code, const char *body, size_t len, int secret)
{
    kagi__out_free(c);
    c->out = malloc(256 + len);
    if (!c->out) {
        c->close_after = 1;
        c->state = C_WRITE;
        return;
    }
    char *o = (char *)c->out, *p = kagi__head(o, c, code, len, secret);
    if (len) p = kagi__put(p, body, len);
    c->out_len = (size_t)(p - o);
    c->out_off = 0;
    c->state = C_WRITE;
}

/* An ETSI error object {"message": msg[, "details": [...]]}; 401 has no body. */
static void kagi__respond_error(kagi__conn *c, int code, const char *msg, const kagi_etsi_req *r)
{
    if (code == 401) {
        kagi__respond(c, 401, NULL, 0, 0);
        return;
    }
    json_t *o = json_object();
    json_object_set_new(o, "message", json_string(msg));
    if (r && r->n_unsupported) {
        json_t *d = json_array();
        for (unsigned i = 0; i < r->n_unsupported; i++)
            json_array_append_new(d, json_pack("{s:s}", "extension_mandatory_unsupported", r->unsupported[i]));
        json_object_set_new(o, "details", d);
    }
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (!s) {
        c->close_after = 1;
        kagi__respond(c, 503, NULL, 0, 0);
        return;
    }
    kagi__respond(c, code, s, strlen(s), 0);
    free(s);
}

/* The 200 response of delivered keys, head and body
 * {"keys":[{"key_ID":"...","key":"BASE64"},...]} built in place in the
 * connection's output buffer (wiped when sent). */
static int kagi__respond_keys(kagi__conn *c, const kagi_store_op *op)
{
    size_t len = 11;
    for (unsigned i = 0; i < op->n_keys; i++) len += (i ? 1 : 0) + 22 + 36 + 4 * ((op->keys[i].len + 2) / 3);
    kagi__out_free(c);
    c->out = malloc(256 + len);
    if (!c->out) return -1;
    char *o = (char *)c->out, *p = kagi__head(o, c, 200, len, 1), *b = p;
    p = KAGI__PUT_LIT(p, "{\"keys\":[");
    for (unsigned i = 0; i < op->n_keys; i++) {
        const kagi_store_key *k = &op->keys[i];
        if (i) *p++ = ',';
        p = KAGI__PUT_LIT(p, "{\"key_ID\":\"");
        kagi_uuid_format(k->id, p);
        p += 36;
        p = KAGI__PUT_LIT(p, "\",\"key\":\"");
        p += EVP_EncodeBlock((unsigned char *)p, op->material + k->off, (int)k->len);
        p = KAGI__PUT_LIT(p, "\"}");
    }
    p = KAGI__PUT_LIT(p, "]}");
    if ((size_t)(p - b) != len) abort(); /* the length in the head must be the body's */
    c->out_len = (size_t)(p - o);
    c->out_off = 0;
    c->state = C_WRITE;
    return 0;
}

static void kagi__log_ids(kagi__logbuf *lb, const char *what, const kagi__call *c, int code)
{
    if (!KAGI__LOGGING(KAGI__LOG_INFO)) return;
    const kagi_store_op *op = &c->op;
    /* hundredths of a millisecond, printed without printf's float path */
    long cms = (long)((kagi__now() - c->t0) * 1e5 + 0.5);
    if (cms < 0) cms = 0;
    /* at most 20 key_IDs a line: 9 + 64 + 4 + 64 + 14 + 30 + 10 + 20 * 37 + 30 < 1000 */
    char line[1024];
    unsigned i = 0;
    do {
        char *p = kagi__put_str(line, what);
        *p++ = ' ';
        p = kagi__put_str(p, c->caller);
        p = c->r.call == KAGI_ETSI_ENC_KEYS ? KAGI__PUT_LIT(p, " -> ") : KAGI__PUT_LIT(p, " <- ");
        p = kagi__put_str(p, c->r.sae);
        p = KAGI__PUT_LIT(p, ": ");
        p = kagi__put_num(p, (unsigned)code);
        if (c->r.call == KAGI_ETSI_ENC_KEYS) {
            p = KAGI__PUT_LIT(p, ", ");
            p = kagi__put_num(p, op->n_keys);
            p = op->n_keys == 1 ? KAGI__PUT_LIT(p, " key of ") : KAGI__PUT_LIT(p, " keys of ");
            p = kagi__put_num(p, c->r.size);
            p = KAGI__PUT_LIT(p, " bits");
        }
        p = KAGI__PUT_LIT(p, ", key_IDs=");
        unsigned first = i;
        for (; i < op->n_keys && i - first < 20; i++) {
            if (i > first) *p++ = ',';
            kagi_uuid_format(op->keys[i].id, p);
            p += 36;
        }
        p = KAGI__PUT_LIT(p, " (");
        p = kagi__put_num(p, (unsigned long)(cms / 100));
        *p++ = '.';
        *p++ = (char)('0' + cms % 100 / 10);
        *p++ = (char)('0' + cms % 10);
        p = KAGI__PUT_LIT(p, " ms)");
        kagi__logbuf_text(lb, KAGI__LOG_INFO, line, (size_t)(p - line));
    } while (i < op->n_keys);
}

/* ---- calls: from request to store and back ---- */

/* Calls are big (up to KAGI_ETSI_MAX_IDS key_IDs): a worker keeps some. */
static kagi__call *kagi__call_get(kagi__worker *w)
{
    kagi__call *c = w->free_calls;
    if (c) {
        w->free_calls = c->next;
        w->n_free--;
        return c;
    }
    return malloc(sizeof *c);
}

static void kagi__call_put(kagi__worker *w, kagi__call *c)
{
    if (w->n_free >= 256) {
        free(c);
        return;
    }
    c->next = w->free_calls;
    w->free_calls = c;
    w->n_free++;
}

static void kagi__conn_io(kagi__conn *c);

/* Answer a peer message its relay thread finished. */
static void kagi__finish_peer(kagi__call *c)
{
    kagi__conn *conn = c->conn;
    kagi__worker *w = c->w;
    conn->call = NULL;
    int dead = conn->dead;
    if (dead) {
        kagi__logbuf_add(&w->log, KAGI__LOG_WARN, "peer %s gone before its answer (%d %s)", c->from, c->pstatus,
                         c->pmsg);
        conn->zombie = w->zombies;
        w->zombies = conn;
    } else if (c->pstatus == 200) {
        char body[64];
        int n = snprintf(body, sizeof body, "{\"stored\":%u}", c->pkeys);
        kagi__respond(conn, 200, body, (size_t)n, 0);
    } else if (c->pfront_block >= 0) {
        /* behind the receiver: say where its front is, so the sender drops
           its own copy up to there and never offers those bytes again */
        json_t *o = json_pack("{s:s,s:{s:I,s:I}}", "message", c->pmsg, "front", "block",
                              (json_int_t)c->pfront_block, "offset", (json_int_t)c->pfront_off);
        char *b = o ? json_dumps(o, JSON_COMPACT) : NULL;
        json_decref(o);
        if (b) kagi__respond(conn, c->pstatus, b, strlen(b), 0);
        else kagi__respond_error(conn, 503, "out of memory", NULL);
        free(b);
    } else {
        kagi__respond_error(conn, c->pstatus, c->pmsg, NULL);
    }
    if (!dead) conn->last = kagi__now();
    kagi_wipe(c->pbody, c->plen);
    free(c->pbody);
    c->pbody = NULL;
    c->peer = 0;
    kagi_store_op_clear(&c->op);
    atomic_fetch_sub(&w->k->inflight, 1);
    kagi__call_put(w, c);
    if (!dead && conn->state == C_WRITE) kagi__conn_io(conn);
}

/* Build the response of a finished call. */
static void kagi__finish(kagi__call *c)
{
    if (c->peer) {
        kagi__finish_peer(c);
        return;
    }
    kagi__conn *conn = c->conn;
    kagi__worker *w = c->w;
    const char *what = c->r.call == KAGI_ETSI_ENC_KEYS ? "enc_keys" : "dec_keys";
    kagi_store_op *op = &c->op;
    conn->call = NULL;
    int dead = conn->dead;
    if (dead) {
        if (op->result == KAGI_STORE_DONE) {
            kagi__logbuf_add(&w->log, KAGI__LOG_WARN, "%s %s: client gone before the response; these "
                             "keys were taken from the store and are lost (never delivered twice):",
                             what, c->caller);
            kagi__log_ids(&w->log, what, c, 0);
        }
        conn->zombie = w->zombies; /* freed at the end of this loop iteration */
        w->zombies = conn;
    } else {
        int code;
        switch (op->result) {
        case KAGI_STORE_DONE: code = 200; break;
        case KAGI_STORE_NO_KEY: code = 503; break;
        case KAGI_STORE_BAD_ID: code = 400; break;
        case KAGI_STORE_NOT_NAMED: code = 401; break;
        default: code = 503; break;
        }
        if (code == 200 && kagi__respond_keys(conn, op) != 0) {
            code = 503;
            snprintf(op->msg, sizeof op->msg, "out of memory");
            kagi__logbuf_add(&w->log, KAGI__LOG_ERROR, "%s %s: out of memory building the response; keys lost",
                             what, c->caller);
        }
        if (code == 200) {
            kagi__log_ids(&w->log, what, c, 200);
        } else {
            const char *msg = op->result == KAGI_STORE_NO_KEY ? "no key available" : op->msg;
            kagi__respond_error(conn, code, msg, NULL);
            kagi__logbuf_add(&w->log, op->result == KAGI_STORE_FAILED ? KAGI__LOG_ERROR : KAGI__LOG_INFO,
                             "%s %s %s %s: %d %s", what, c->caller, c->r.call == KAGI_ETSI_ENC_KEYS ? "->" : "<-",
                             c->r.sae, code, op->msg[0] ? op->msg : msg);
        }
        conn->last = kagi__now();
    }
    kagi_store_op_clear(op);
    atomic_fetch_sub(&w->k->inflight, 1);
    kagi__call_put(w, c);
    if (!dead && conn->state == C_WRITE) kagi__conn_io(conn);
}

/* Committer thread: hand the finished call to its worker. */
void kagi__op_done(kagi_store_op *op)
{
    kagi__call *c = (kagi__call *)op;
    kagi__worker *w = c->w;
    pthread_mutex_lock(&w->mu);
    int was_empty = w->done_head == NULL;
    c->next = NULL;
    if (w->done_tail) w->done_tail->next = c;
    else w->done_head = c;
    w->done_tail = c;
    pthread_mutex_unlock(&w->mu);
    if (was_empty) {
        uint64_t one = 1;
        ssize_t r = write(w->efd, &one, sizeof one);
        (void)r;
    }
}

static void kagi__on_done(kagi__worker *w)
{
    uint64_t v;
    ssize_t r = read(w->efd, &v, sizeof v);
    (void)r;
    pthread_mutex_lock(&w->mu);
    kagi__call *c = w->done_head;
    w->done_head = w->done_tail = NULL;
    pthread_mutex_unlock(&w->mu);
    while (c) {
        kagi__call *next = c->next;
        kagi__finish(c);
        c = next;
    }
}

long kagi__link_to(const kagi_kme_config *cfg, const char *kme)
{
    for (size_t i = 0; i < cfg->n_links; i++)
        if (!strcmp(cfg->links[i].peer, kme)) return (long)i;
    return -1;
}

/* The link that leads to KME kme: its own (a neighbour, or this KME's
 * loopback link), else the first hop of the route to it (*route set);
 * -1 when none does. */
static long kagi__first_hop(const kagi_kme_config *cfg, const char *kme, const kagi_kme_route_cfg **route)
{
    *route = NULL;
    long i = kagi__link_to(cfg, kme);
    for (size_t j = 0; i < 0 && j < cfg->n_routes; j++)
        if (!strcmp(cfg->routes[j].dest, kme)) {
            *route = &cfg->routes[j];
            i = kagi__link_to(cfg, cfg->routes[j].hops[0]);
        }
    return i;
}

/* Where the keys for a master here and its slaves come from: the loopback
 * link when they are all attached here; else the path of KMEs to theirs
 * (a neighbour, or a configured route) and the link to its first hop. */
static int kagi__route(kagi__kme *k, kagi__call *c, const char *const *slaves, unsigned n, uint32_t *link,
                       char *msg, size_t cap)
{
    const kagi_kme_config *cfg = k->c;
    const char *kme = NULL;
    for (unsigned i = 0; i < n; i++) {
        const kagi_kme_sae_cfg *s = kagi_kme_config_sae(cfg, slaves[i], strlen(slaves[i]));
        if (!s) {
            snprintf(msg, cap, "unknown %s %s", i ? "additional slave SAE" : "slave_SAE_ID", slaves[i]);
            return 400;
        }
        if (kme && strcmp(kme, s->kme) != 0) {
            snprintf(msg, cap, "all slave SAEs must be attached to the same KME");
            return 400;
        }
        kme = s->kme;
    }
    const kagi_kme_route_cfg *r = NULL;
    long i = kagi__first_hop(cfg, kme, &r);
    if (i < 0) {
        snprintf(msg, cap, "no link or route of this KME reaches KME %s", kme);
        return 503;
    }
    c->n_path = 0;
    if (r) {
        for (unsigned j = 0; j < r->n_hops; j++) memcpy(c->path[j], r->hops[j], sizeof c->path[j]);
        c->n_path = r->n_hops;
    } else if (strcmp(kme, cfg->kme_id) != 0) {
        snprintf(c->path[0], sizeof c->path[0], "%s", kme);
        c->n_path = 1;
    }
    c->first_link = i;
    *link = c->n_path ? k->out_ids[i] : k->link_ids[i];
    return 0;
}

static void kagi__status(kagi__kme *k, kagi__conn *conn, const kagi_etsi_req *r)
{
    const kagi_kme_config *cfg = k->c;
    const kagi_kme_sae_cfg *s = kagi_kme_config_sae(cfg, r->sae, strlen(r->sae));
    if (!s) {
        char msg[128];
        snprintf(msg, sizeof msg, "unknown slave_SAE_ID %s", r->sae);
        kagi__respond_error(conn, 400, msg, NULL);
        return;
    }
    /* keys this KME could issue now: its own direction of the first link */
    uint64_t stored = 0;
    const kagi_kme_route_cfg *route;
    long i = kagi__first_hop(cfg, s->kme, &route);
    if (i >= 0) stored = kagi_store_pool_bytes(k->store, k->out_ids[i]) / (cfg->key_size / 8);
    json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "source_KME_ID", cfg->kme_id,
                          "target_KME_ID", s->kme, "master_SAE_ID", conn->sae, "slave_SAE_ID", s->id,
                          "key_size", (json_int_t)cfg->key_size, "stored_key_count", (json_int_t)stored,
                          "max_key_count", (json_int_t)cfg->max_key_count, "max_key_per_request",
                          (json_int_t)cfg->max_keys_per_request, "max_key_size",
                          (json_int_t)cfg->max_key_size, "min_key_size", (json_int_t)cfg->min_key_size,
                          "max_SAE_ID_count", (json_int_t)cfg->max_sae_id_count);
    char *body = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (!body) {
        kagi__respond_error(conn, 503, "out of memory", NULL);
        return;
    }
    kagi__respond(conn, 200, body, strlen(body), 0);
    free(body);
    kagi__logbuf_add(&conn->w->log, KAGI__LOG_INFO, "status %s -> %s: 200, stored_key_count=%llu", conn->sae,
                     s->id, (unsigned long long)stored);
}

static void kagi__identify(kagi__conn *conn)
{
    SSL *ssl = conn->ssl;
    conn->identified = -1;
    X509 *cert = SSL_get0_peer_certificate(ssl);
    const char *why = "no certificate";
    if (cert) {
        X509_NAME *nm = X509_get_subject_name(cert);
        int at = X509_NAME_get_index_by_NID(nm, NID_commonName, -1);
        if (at < 0) why = "certificate has no CN";
        else if (X509_NAME_get_index_by_NID(nm, NID_commonName, at) >= 0) why = "certificate has two CNs";
        else {
            ASN1_STRING *d = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(nm, at));
            unsigned char *u = NULL;
            int ul = ASN1_STRING_to_UTF8(&u, d);
            if (ul > 0 && kagi_etsi_valid_id((const char *)u, (size_t)ul)) {
                memcpy(conn->sae, u, (size_t)ul);
                conn->sae[ul] = '\0';
                const kagi_kme_config *cfg = conn->w->k->c;
                const kagi_kme_sae_cfg *s = kagi_kme_config_sae(cfg, conn->sae, (size_t)ul);
                if (s && !strcmp(s->kme, cfg->kme_id)) {
                    conn->identified = 1;
                    why = NULL;
                } else if (!s && strcmp(conn->sae, cfg->kme_id) != 0 && kagi__link_to(cfg, conn->sae) >= 0) {
                    conn->identified = 2; /* a neighbour KME: the peer protocol only */
                    why = NULL;
                } else {
                    why = "CN is not an SAE of this KME";
                }
            } else {
                why = "CN is not a valid SAE ID";
            }
            OPENSSL_free(u);
        }
    }
    if (why)
        kagi__logbuf_add(&conn->w->log, KAGI__LOG_WARN, "connection from %s (%s): %s%s%s: every request gets 401",
                         conn->peer, SSL_get_version(ssl), why, conn->sae[0] ? ": " : "", conn->sae);
    else
        kagi__logbuf_add(&conn->w->log, KAGI__LOG_INFO, "connection from %s: %s %s (%s, %s)", conn->peer,
                         conn->identified == 2 ? "peer KME" : "SAE", conn->sae, SSL_get_version(ssl),
                         SSL_get_cipher_name(ssl));
}

/* A request from a neighbour KME: the peer protocol's one resource. */
static void kagi__peer_request(kagi__conn *conn, const kagi_http_req *h)
{
    kagi__worker *w = conn->w;
    kagi__kme *k = w->k;
    static const char path[] = KAGI_PEER_PATH;
    if (h->method != KAGI_HTTP_POST || h->query || h->path_len != sizeof path - 1 ||
        memcmp(h->target, path, sizeof path - 1) != 0) {
        kagi__respond_error(conn, 404, "a peer KME may only POST " KAGI_PEER_PATH, NULL);
        return;
    }
    kagi__call *c = kagi__call_get(w);
    uint8_t *body = c ? malloc(h->body_len ? h->body_len : 1) : NULL;
    if (!body) {
        if (c) kagi__call_put(w, c);
        kagi__respond_error(conn, 503, "out of memory", NULL);
        return;
    }
    memset(&c->op, 0, sizeof c->op);
    memcpy(body, h->body, h->body_len);
    c->k = k;
    c->w = w;
    c->conn = conn;
    c->t0 = kagi__now();
    c->n_path = 0;
    c->peer = 1;
    c->pbody = body;
    c->plen = h->body_len;
    c->pstatus = 503;
    c->pkeys = 0;
    c->pfront_block = -1;
    c->pfront_off = 0;
    c->pmsg[0] = '\0';
    snprintf(c->from, sizeof c->from, "%s", conn->sae);
    snprintf(c->caller, sizeof c->caller, "%s", conn->sae);
    atomic_fetch_add(&k->inflight, 1);
    conn->call = c;
    conn->state = C_BUSY;
    if (kagi__relay_start(c) != KAGI_OK) {
        conn->call = NULL;
        atomic_fetch_sub(&k->inflight, 1);
        free(body);
        c->pbody = NULL;
        c->peer = 0;
        kagi__call_put(w, c);
        kagi__respond_error(conn, 503, "too many relays in progress", NULL);
    }
}

/* One whole request: answer it now or hand it to the store. */
static void kagi__handle(kagi__conn *conn, const kagi_http_req *h)
{
    kagi__worker *w = conn->w;
    kagi__kme *k = w->k;
    conn->requests++;
    if (!h->keep_alive) conn->close_after = 1;
    if (conn->identified < 0) {
        kagi__logbuf_add(&w->log, KAGI__LOG_INFO, "request from %s (%s): 401", conn->peer,
                         conn->sae[0] ? conn->sae : "no SAE");
        kagi__respond(conn, 401, NULL, 0, 0);
        return;
    }
    if (atomic_load(&k->draining)) {
        conn->close_after = 1;
        kagi__respond_error(conn, 503, "shutting down", NULL);
        return;
    }
    if (conn->identified == 2) {
        kagi__peer_request(conn, h);
        return;
    }
    kagi__call *c = kagi__call_get(w);
    if (!c) {
        kagi__respond_error(conn, 503, "out of memory", NULL);
        return;
    }
    memset(&c->op, 0, sizeof c->op);
    c->k = k;
    c->peer = 0;
    c->n_path = 0;
    int st = kagi_etsi_parse(&c->r, h->method, h->target, h->path_len, h->query, h->query_len, h->body,
                             h->body_len, &k->lim);
    if (st) {
        kagi__logbuf_add(&w->log, KAGI__LOG_INFO, "%s %.*s from %s: %d %s",
                         h->method == KAGI_HTTP_GET ? "GET" : h->method == KAGI_HTTP_POST ? "POST" : "other",
                         (int)(h->path_len > 100 ? 100 : h->path_len), h->target, conn->sae, st, c->r.message);
        kagi__respond_error(conn, st, c->r.message, &c->r);
        kagi__call_put(w, c);
        return;
    }
    if (c->r.call == KAGI_ETSI_STATUS) {
        kagi__status(k, conn, &c->r);
        kagi__call_put(w, c);
        return;
    }
    c->w = w;
    c->conn = conn;
    c->t0 = kagi__now();
    _Static_assert(sizeof c->caller == sizeof conn->sae, "an SAE id fits both");
    memcpy(c->caller, conn->sae, sizeof c->caller);
    kagi_store_op *op = &c->op;
    op->done = kagi__op_done;
    char msg[200];
    if (c->r.call == KAGI_ETSI_ENC_KEYS) {
        op->kind = KAGI_STORE_ISSUE;
        op->master = c->caller;
        op->slaves[0] = c->r.sae;
        op->n_slaves = 1;
        for (unsigned i = 0; i < c->r.n_extra; i++) op->slaves[op->n_slaves++] = c->r.extra[i];
        const char *bad = NULL;
        for (unsigned i = 0; i < op->n_slaves; i++)
            if (!strcmp(op->slaves[i], c->caller)) bad = "the master SAE cannot be one of its slaves";
        for (unsigned i = 0; i < c->r.n_extra; i++)
            if (!strcmp(c->r.extra[i], c->r.sae)) bad = "additional_slave_SAE_IDs repeats slave_SAE_ID";
        int rc = bad ? 400 : kagi__route(k, c, op->slaves, op->n_slaves, &op->link, msg, sizeof msg);
        if (rc) {
            if (bad) snprintf(msg, sizeof msg, "%s", bad);
            kagi__logbuf_add(&w->log, KAGI__LOG_INFO, "enc_keys %s -> %s: %d %s", c->caller, c->r.sae, rc, msg);
            kagi__respond_error(conn, rc, msg, NULL);
            kagi__call_put(w, c);
            return;
        }
        op->number = c->r.number;
        op->size_bytes = c->r.size / 8;
        if (c->n_path) op->n_slaves = 0; /* the slaves' KME keeps the keys for them */
    } else {
        if (!kagi_kme_config_sae(k->c, c->r.sae, strlen(c->r.sae))) {
            snprintf(msg, sizeof msg, "unknown master_SAE_ID %s", c->r.sae);
            kagi__respond_error(conn, 400, msg, NULL);
            kagi__call_put(w, c);
            return;
        }
        op->kind = KAGI_STORE_FETCH;
        op->master = c->r.sae;
        op->caller = c->caller;
        op->ids = (const uint8_t(*)[KAGI_KEY_ID_BYTES])c->r.ids;
        op->n_ids = c->r.n_ids;
    }
    atomic_fetch_add(&k->inflight, 1);
    conn->call = c;
    conn->state = C_BUSY;
    int relay = c->n_path > 0;
    if ((relay ? kagi__relay_start(c) : kagi_store_submit(k->store, op)) != KAGI_OK) {
        conn->call = NULL;
        atomic_fetch_sub(&k->inflight, 1);
        kagi__respond_error(conn, 503, relay ? "too many relays in progress" : "key store unavailable", NULL);
        kagi__call_put(w, c);
    }
}

/* ---- connections ---- */

static void kagi__listen_on(kagi__worker *w, int on)
{
    if (w->lis_on == on || w->lfd < 0) return;
    struct epoll_event ev = {.events = on ? EPOLLIN : 0, .data.ptr = &w->lfd};
    epoll_ctl(w->ep, EPOLL_CTL_MOD, w->lfd, &ev);
    w->lis_on = on;
}

static void kagi__conn_close(kagi__conn *c, const char *why)
{
    kagi__worker *w = c->w;
    if (why) kagi__logbuf_add(&w->log, KAGI__LOG_INFO, "closing connection from %s%s%s: %s", c->peer,
                              c->sae[0] ? " " : "", c->sae, why);
    else kagi__logbuf_add(&w->log, KAGI__LOG_DEBUG, "connection from %s closed after %lu requests", c->peer,
                          c->requests);
    epoll_ctl(w->ep, EPOLL_CTL_DEL, c->fd, NULL);
    SSL_free(c->ssl);
    close(c->fd);
    c->ssl = NULL;
    c->fd = -1;
    c->prev->next = c->next;
    c->next->prev = c->prev;
    w->n_conns--;
    if (w->n_conns < w->max_conns) kagi__listen_on(w, 1);
    kagi__out_free(c);
    if (c->call) {
        c->dead = 1; /* freed when its call comes back */
        return;
    }
    c->zombie = w->zombies;
    w->zombies = c;
}

/* Free the connections closed during a loop iteration (an event later in
 * the same iteration may still name one: it is skipped, not touched
 * after free). */
static void kagi__reap(kagi__worker *w)
{
    while (w->zombies) {
        kagi__conn *c = w->zombies;
        w->zombies = c->zombie;
        kagi_wipe(c->in, c->in_cap);
        free(c->in);
        free(c);
    }
}

/* After an SSL call returned r <= 0: note which way the connection now
 * waits, or close it with why (NULL: a quiet close) when it failed. The
 * caller returns either way; c may be gone. */
static void kagi__ssl_stall(kagi__conn *c, int r, const char *why)
{
    int e = SSL_get_error(c->ssl, r);
    if (e == SSL_ERROR_WANT_READ) c->can_read = 0;
    else if (e == SSL_ERROR_WANT_WRITE) c->can_write = 0;
    else kagi__conn_close(c, why);
    /* SSL_get_error needs an empty queue at the next call: emptied here,
     * after the only calls that fill it, not before every read and write
     * (~800 instructions each in OpenSSL 3). */
    ERR_clear_error();
}

/* Drive a connection as far as it goes without blocking. */
static void kagi__conn_io(kagi__conn *c)
{
    kagi__kme *k = c->w->k;
    const kagi_kme_config *cfg = k->c;
    for (;;) {
        if (c->state == C_HANDSHAKE) {
            ERR_clear_error();
            int r = SSL_do_handshake(c->ssl);
            if (r == 1) {
                c->state = C_READ;
                c->last = kagi__now();
                kagi__identify(c);
                continue;
            }
            kagi__ssl_stall(c, r, "TLS handshake failed");
            return;
        }
        if (c->state == C_BUSY) return;
        if (c->state == C_WRITE) {
            if (!c->out) {
                kagi__conn_close(c, "out of memory");
                return;
            }
            if (c->out_off < c->out_len) {
                int n = SSL_write(c->ssl, c->out + c->out_off, (int)(c->out_len - c->out_off));
                if (n <= 0) {
                    kagi__ssl_stall(c, n, "write failed");
                    return;
                }
                c->out_off += (size_t)n;
                c->last = kagi__now();
                continue;
            }
            int interim = c->sent_continue == 1;
            kagi__out_free(c);
            if (interim) {
                c->sent_continue = 2;
                c->state = C_READ;
                continue;
            }
            if (c->close_after) {
                kagi__conn_close(c, NULL);
                return;
            }
            c->sent_continue = 0;
            c->state = C_READ;
            continue;
        }
        /* C_READ: a whole request in the buffer? */
        kagi_http_req h = {0};
        const char *why = "";
        /* peers send many keys at once */
        size_t blim = c->identified == 2 ? KAGI_PEER_BODY_LIMIT : cfg->body_limit;
        int st = c->in_len ? kagi_http_parse(c->in, c->in_len, cfg->header_limit, blim, &h, &why) : 1;
        if (st == 0) {
            kagi__handle(c, &h);
            /* the request's bytes are done with (the call copied what it needs) */
            size_t rest = c->in_len - h.total;
            memmove(c->in, c->in + h.total, rest);
            kagi_wipe(c->in + rest, h.total);
            c->in_len = rest;
            continue;
        }
        if (st > 1) {
            kagi__logbuf_add(&c->w->log, KAGI__LOG_INFO, "request from %s refused: %d %s", c->peer, st, why);
            c->close_after = 1;
            c->in_len = 0;
            if (c->identified < 0) kagi__respond(c, 401, NULL, 0, 0);
            else kagi__respond_error(c, st, why, NULL);
            continue;
        }
        if (h.head_len && h.expect_continue && !c->sent_continue && c->identified > 0) {
            c->sent_continue = 1;
            static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
            c->out = malloc(sizeof cont - 1);
            if (c->out) {
                memcpy(c->out, cont, sizeof cont - 1);
                c->out_len = sizeof cont - 1;
            }
            c->state = C_WRITE;
            continue;
        }
        if (!c->can_read && !SSL_has_pending(c->ssl)) return;
        size_t max = cfg->header_limit + (c->identified == 2 ? KAGI_PEER_BODY_LIMIT : cfg->body_limit) + 1;
        if (c->in_cap - c->in_len < 4096 && c->in_cap < max) {
            size_t cap = c->in_cap ? c->in_cap * 2 : 8192;
            if (cap > max) cap = max;
            uint8_t *b = malloc(cap);
            if (!b) {
                kagi__conn_close(c, "out of memory");
                return;
            }
            if (c->in) {
                memcpy(b, c->in, c->in_len);
                kagi_wipe(c->in, c->in_cap);
                free(c->in);
            }
            c->in = b;
            c->in_cap = cap;
        }
        if (c->in_len == c->in_cap) {
            kagi__conn_close(c, "request larger than the limits");
            return;
        }
        int n = SSL_read(c->ssl, c->in + c->in_len, (int)(c->in_cap - c->in_len));
        if (n <= 0) {
            kagi__ssl_stall(c, n, c->in_len ? "connection closed in a request" : NULL);
            return;
        }
        c->in_len += (size_t)n;
        c->last = kagi__now();
    }
}

/* Socket reads that return less than asked drained the socket: the next
 * bytes will raise a new edge, so no read(2) is spent just to learn
 * EAGAIN. */
static long kagi__bio_cb(BIO *b, int oper, const char *argp, size_t len, int argi, long argl, int ret,
                         size_t *processed)
{
    (void)argp;
    (void)argi;
    (void)argl;
    if (oper == (BIO_CB_READ | BIO_CB_RETURN)) {
        kagi__conn *c = (kagi__conn *)BIO_get_callback_arg(b);
        if (c && (ret <= 0 || (processed && *processed < len))) c->can_read = 0;
    }
    return ret;
}

static void kagi__accept(kagi__worker *w)
{
    for (;;) {
        if (w->n_conns >= w->max_conns) {
            kagi__listen_on(w, 0);
            kagi__logbuf_add(&w->log, KAGI__LOG_WARN, "worker %u: %u connections, not accepting more until "
                             "one closes", w->idx, w->n_conns);
            return;
        }
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        int fd = accept4(w->lfd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
                !(errno == EINVAL && atomic_load(&w->k->draining))) /* the listener shut at a stop */
                kagi__logbuf_add(&w->log, KAGI__LOG_WARN, "accept: %s", strerror(errno));
            return;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        kagi__conn *c = calloc(1, sizeof *c);
        SSL *ssl = c ? SSL_new(w->k->ctx) : NULL;
        if (!ssl || SSL_set_fd(ssl, fd) != 1) {
            SSL_free(ssl);
            free(c);
            close(fd);
            kagi__logbuf_add(&w->log, KAGI__LOG_ERROR, "out of memory for a new connection");
            continue;
        }
        SSL_set_accept_state(ssl);
        BIO *rb = SSL_get_rbio(ssl);
        BIO_set_callback_ex(rb, kagi__bio_cb);
        BIO_set_callback_arg(rb, (char *)c);
        c->w = w;
        c->fd = fd;
        c->ssl = ssl;
        c->state = C_HANDSHAKE;
        c->can_read = c->can_write = 1;
        c->last = kagi__now();
        char host[INET6_ADDRSTRLEN] = "?";
        unsigned port = 0;
        if (ss.ss_family == AF_INET) {
            inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, host, sizeof host);
            port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
        } else if (ss.ss_family == AF_INET6) {
            inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, host, sizeof host);
            port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
        }
        snprintf(c->peer, sizeof c->peer, "%s:%u", host, port);
        c->next = w->conns.next;
        c->prev = &w->conns;
        w->conns.next->prev = c;
        w->conns.next = c;
        w->n_conns++;
        struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, .data.ptr = c};
        epoll_ctl(w->ep, EPOLL_CTL_ADD, fd, &ev);
        kagi__conn_io(c);
    }
}

/* Once a second: close connections with no progress for the timeout. */
static void kagi__tick(kagi__worker *w)
{
    double now = kagi__now(), limit = w->k->c->timeout_s;
    for (kagi__conn *c = w->conns.next, *n; c != &w->conns; c = n) {
        n = c->next;
        if (c->state == C_BUSY || now - c->last <= limit) continue;
        const char *why = c->state == C_HANDSHAKE ? "TLS handshake not finished within the timeout"
                        : c->state == C_WRITE    ? "response not taken within the timeout"
                        : c->in_len              ? "request not complete within the timeout"
                                                 : NULL;
        if (why) kagi__conn_close(c, why);
        else kagi__conn_close(c, "idle for the timeout");
    }
}

static void *kagi__worker_main(void *arg)
{
    kagi__worker *w = arg;
    struct epoll_event evs[256];
    w->next_tick = kagi__now() + 1;
    while (!atomic_load(&w->stop)) {
        int n = epoll_wait(w->ep, evs, 256, 250);
        for (int i = 0; i < n; i++) {
            void *p = evs[i].data.ptr;
            if (p == &w->lfd) {
                kagi__accept(w);
            } else if (p == &w->efd) {
                kagi__on_done(w);
            } else {
                kagi__conn *c = p;
                if (c->fd < 0) continue;
                uint32_t e = evs[i].events;
                if (e & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) c->can_read = 1;
                if (e & (EPOLLOUT | EPOLLHUP | EPOLLERR)) c->can_write = 1;
                if (c->state == C_BUSY && (e & (EPOLLHUP | EPOLLERR))) {
                    kagi__conn_close(c, "client gone while its request was in the store");
                    continue;
                }
                kagi__conn_io(c);
            }
        }
        double now = kagi__now();
        if (now >= w->next_tick) {
            w->next_tick = now + 1;
            kagi__tick(w);
        }
        kagi__reap(w);
        kagi__logbuf_flush(&w->log);
    }
    return NULL;
}

static int kagi__verify_cb(int ok, X509_STORE_CTX *x)
{
    if (!ok) {
        char subj[256] = "?";
        X509 *cert = X509_STORE_CTX_get_current_cert(x);
        if (cert) X509_NAME_oneline(X509_get_subject_name(cert), subj, sizeof subj);
        kagi__log(KAGI__LOG_WARN, "client certificate %s refused: %s", subj,
                  X509_verify_cert_error_string(X509_STORE_CTX_get_error(x)));
    }
    return ok;
}

static void kagi__info_cb(const SSL *ssl, int where, int ret)
{
    if ((where & SSL_CB_ALERT) && (where & SSL_CB_WRITE) && (ret >> 8) == 2) {
        char peer[64] = "?";
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        int fd = SSL_get_fd(ssl);
        if (fd >= 0 && getpeername(fd, (struct sockaddr *)&ss, &sl) == 0 && ss.ss_family == AF_INET) {
            struct sockaddr_in *a = (struct sockaddr_in *)&ss;
            char h[INET_ADDRSTRLEN];
            inet_ntop(AF_INET, &a->sin_addr, h, sizeof h);
            snprintf(peer, sizeof peer, "%s:%u", h, ntohs(a->sin_port));
        }
        const char *desc = SSL_alert_desc_string_long(ret);
        if ((ret & 0xff) == 116) desc = "certificate required"; /* TLS 1.3, unnamed in OpenSSL 3.0 */
        kagi__log(KAGI__LOG_WARN, "TLS handshake with %s failed: sent alert %d '%s'", peer, ret & 0xff, desc);
    }
}

static int kagi__tls_fail(const char *what, const char *path)
{
    unsigned long e = ERR_get_error();
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    ERR_clear_error();
    return kagi__err(KAGI_ERR_ARG, "TLS: %s %s: %s", what, path, buf);
}

static int kagi__tls(kagi__kme *k)
{
    const kagi_kme_config *c = k->c;
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    KAGI__FAIL_IF(!ctx, KAGI_ERR_NOMEM, "TLS: cannot create a context");
    k->ctx = ctx;
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_COMPRESSION);
    if (SSL_CTX_set_cipher_list(ctx, "ECDHE+AESGCM:ECDHE+CHACHA20") != 1)
        return kagi__tls_fail("cipher list", "");
    if (SSL_CTX_use_certificate_chain_file(ctx, c->cert) != 1) return kagi__tls_fail("certificate", c->cert);
    if (SSL_CTX_use_PrivateKey_file(ctx, c->key, SSL_FILETYPE_PEM) != 1) return kagi__tls_fail("key", c->key);
    if (SSL_CTX_check_private_key(ctx) != 1) return kagi__tls_fail("key does not match", c->cert);
    if (SSL_CTX_load_verify_locations(ctx, c->client_ca, NULL) != 1) return kagi__tls_fail("client CA", c->client_ca);
    STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(c->client_ca);
    if (!names) return kagi__tls_fail("client CA names", c->client_ca);
    SSL_CTX_set_client_CA_list(ctx, names);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, kagi__verify_cb);
    SSL_CTX_set_verify_depth(ctx, 4);
    static const unsigned char sid[] = "kagi-kme";
    SSL_CTX_set_session_id_context(ctx, sid, sizeof sid - 1);
    SSL_CTX_set_info_callback(ctx, kagi__info_cb);
    SSL_CTX_set_read_ahead(ctx, 1); /* one read(2) per request, not header + body */
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    return KAGI_OK;
}

/* ---- workers ---- */

/* ---- workers ---- */

static int kagi__workers(kagi__kme *k)
{
    const kagi_kme_config *c = k->c;
    struct addrinfo hints = {0}, *ai = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    char port[16];
    snprintf(port, sizeof port, "%u", c->port);
    int gai = getaddrinfo(c->listen_host, port, &hints, &ai);
    KAGI__FAIL_IF(gai != 0, KAGI_ERR_NET, "listen %s: %s", c->listen_host, gai_strerror(gai));
    struct sockaddr_storage sa;
    socklen_t sl = (socklen_t)ai->ai_addrlen;
    memcpy(&sa, ai->ai_addr, ai->ai_addrlen);
    freeaddrinfo(ai);
    k->n_workers = c->workers ? c->workers : 1;
    k->workers = calloc(k->n_workers, sizeof *k->workers);
    KAGI__FAIL_IF(!k->workers, KAGI_ERR_NOMEM, "out of memory");
    for (unsigned i = 0; i < k->n_workers; i++) {
        kagi__worker *w = &k->workers[i];
        w->k = k;
        w->idx = i;
        w->ep = w->lfd = w->efd = -1;
        w->conns.next = w->conns.prev = &w->conns;
        w->max_conns = c->max_connections / k->n_workers ? c->max_connections / k->n_workers : 1;
        pthread_mutex_init(&w->mu, NULL);
    }
    for (unsigned i = 0; i < k->n_workers; i++) {
        kagi__worker *w = &k->workers[i];
        w->ep = epoll_create1(EPOLL_CLOEXEC);
        w->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        w->lfd = socket(sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        KAGI__FAIL_IF(w->ep < 0 || w->efd < 0 || w->lfd < 0, KAGI_ERR_NET, "cannot create sockets: %s",
                      strerror(errno));
        int one = 1;
        setsockopt(w->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (k->n_workers > 1) setsockopt(w->lfd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
        setsockopt(w->lfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        KAGI__FAIL_IF(bind(w->lfd, (struct sockaddr *)&sa, sl) != 0 || listen(w->lfd, 1024) != 0, KAGI_ERR_NET,
                      "cannot listen on %s:%u: %s", c->listen_host, i ? k->port : c->port, strerror(errno));
        if (i == 0) {
            /* port 0: the other workers share the port the first one got */
            struct sockaddr_storage got;
            socklen_t gl = sizeof got;
            getsockname(w->lfd, (struct sockaddr *)&got, &gl);
            k->port = ntohs(got.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&got)->sin6_port
                                                      : ((struct sockaddr_in *)&got)->sin_port);
            if (sa.ss_family == AF_INET6) ((struct sockaddr_in6 *)&sa)->sin6_port = htons((uint16_t)k->port);
            else ((struct sockaddr_in *)&sa)->sin_port = htons((uint16_t)k->port);
        }
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &w->lfd};
        struct epoll_event ee = {.events = EPOLLIN, .data.ptr = &w->efd};
        KAGI__FAIL_IF(epoll_ctl(w->ep, EPOLL_CTL_ADD, w->lfd, &ev) != 0 ||
                          epoll_ctl(w->ep, EPOLL_CTL_ADD, w->efd, &ee) != 0,
                      KAGI_ERR_NET, "epoll: %s", strerror(errno));
        w->lis_on = 1;
    }
    for (unsigned i = 0; i < k->n_workers; i++) {
        kagi__worker *w = &k->workers[i];
        KAGI__FAIL_IF(pthread_create(&w->thread, NULL, kagi__worker_main, w) != 0, KAGI_ERR_NOMEM,
                      "cannot start a worker thread");
        w->started = 1;
    }
    return KAGI_OK;
}

static void kagi__workers_stop(kagi__kme *k)
{
    for (unsigned i = 0; i < k->n_workers; i++) {
        kagi__worker *w = &k->workers[i];
        if (!w->started) continue;
        atomic_store(&w->stop, 1);
        uint64_t one = 1;
        ssize_t r = write(w->efd, &one, sizeof one);
        (void)r;
        pthread_join(w->thread, NULL);
        w->started = 0;
    }
}

/* After the store is closed: nothing can reach the workers any more. */
static void kagi__workers_free(kagi__kme *k)
{
    for (unsigned i = 0; i < k->n_workers; i++) {
        kagi__worker *w = &k->workers[i];
        /* calls the committer finished after the loop stopped */
        for (kagi__call *c = w->done_head, *n; c; c = n) {
            n = c->next;
            kagi_store_op_clear(&c->op);
            if (c->peer) free(c->pbody);
            c->conn->call = NULL;
            if (c->conn->dead) {
                c->conn->zombie = w->zombies;
                w->zombies = c->conn;
            }
            free(c);
        }
        while (w->conns.next != &w->conns) kagi__conn_close(w->conns.next, NULL);
        kagi__reap(w);
        for (kagi__call *c = w->free_calls, *n; c; c = n) {
            n = c->next;
            free(c);
        }
        kagi__logbuf_flush(&w->log);
        if (w->lfd >= 0) close(w->lfd);
        if (w->efd >= 0) close(w->efd);
        if (w->ep >= 0) close(w->ep);
        pthread_mutex_destroy(&w->mu);
    }
    free(k->workers);
    k->workers = NULL;
}

/* ---- the daemon ---- */

static int kagi__write_ready(const kagi__kme *k)
{
    const kagi_kme_config *c = k->c;
    if (!c->ready_file[0]) return KAGI_OK;
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", c->ready_file);
    FILE *f = fopen(tmp, "w");
    KAGI__FAIL_IF(!f, KAGI_ERR_IO, "ready_file %s: %s", tmp, strerror(errno));
    fprintf(f, "%s:%u\n", c->listen_host, k->port);
    int bad = fclose(f) != 0 || rename(tmp, c->ready_file) != 0;
    KAGI__FAIL_IF(bad, KAGI_ERR_IO, "ready_file %s: %s", c->ready_file, strerror(errno));
    return KAGI_OK;
}

static int kagi__sources(kagi__kme *k)
{
    const kagi_kme_config *c = k->c;
    k->link_ids = calloc(c->n_links + 1, sizeof *k->link_ids);
    k->out_ids = calloc(c->n_links + 1, sizeof *k->out_ids);
    k->in_ids = calloc(c->n_links + 1, sizeof *k->in_ids);
    k->devs = calloc(c->n_links + 1, sizeof *k->devs);
    KAGI__FAIL_IF(!k->link_ids || !k->out_ids || !k->in_ids || !k->devs, KAGI_ERR_NOMEM, "out of memory");
    uint64_t cap = c->max_key_count * (c->key_size / 8);
    for (size_t i = 0; i < c->n_links; i++) {
        const kagi_kme_link_cfg *l = &c->links[i];
        KAGI__TRY(kagi_store_link(k->store, l->name, &k->link_ids[i]));
        int loop = !strcmp(l->peer, c->kme_id);
        k->out_ids[i] = k->in_ids[i] = k->link_ids[i];
        int lower = strcmp(c->kme_id, l->peer) < 0;
        if (!loop) {
            /* Each end spends one half of every block (docs/peer.md): the
               KME whose id sorts first the first half. */
            char second[KAGI_LINK_NAME_MAX + 2];
            uint32_t id2;
            snprintf(second, sizeof second, "%s+", l->name);
            KAGI__TRY(kagi_store_link(k->store, second, &id2));
            KAGI__TRY(kagi_store_split(k->store, k->link_ids[i], id2));
            k->out_ids[i] = lower ? k->link_ids[i] : id2;
            k->in_ids[i] = lower ? id2 : k->link_ids[i];
        }
        char what[160] = "no key source";
        if (l->source == KAGI_SOURCE_SIM) {
            kagi_device_sim_opts o = {0};
            KAGI__TRY(kagi_kme_link_rate(l, &o.bps));
            o.speedup = l->speedup;
            o.block_bytes = l->block_bytes;
            o.cap_bytes = cap;
            KAGI__TRY(kagi_device_sim_start(&k->devs[i], k->store, k->link_ids[i], l->name, &o));
            snprintf(what, sizeof what, "simulated device at %.4g bit/s x %g, blocks of %zu bytes", o.bps,
                     o.speedup, o.block_bytes);
        } else if (l->source == KAGI_SOURCE_DIR) {
            KAGI__TRY(kagi_device_dir_start(&k->devs[i], k->store, k->link_ids[i], l->name, l->dir,
                                            l->poll_ms, cap));
            snprintf(what, sizeof what, "directory device %.100s every %u ms", l->dir, l->poll_ms);
        }
        if (loop)
            kagi__log(KAGI__LOG_INFO, "link %s (loopback: both ends here): %s; pool holds %llu bytes", l->name,
                      what, (unsigned long long)kagi_store_pool_bytes(k->store, k->link_ids[i]));
        else
            kagi__log(KAGI__LOG_INFO, "link %s to %s at %s:%u: %s; this KME spends the %s half of each "
                      "block (%llu bytes stored), the peer the %s (%llu bytes)", l->name, l->peer, l->peer_host,
                      l->peer_port, what, lower ? "first" : "second",
                      (unsigned long long)kagi_store_pool_bytes(k->store, k->out_ids[i]), lower ? "second" : "first",
                      (unsigned long long)kagi_store_pool_bytes(k->store, k->in_ids[i]));
    }
    return KAGI_OK;
}

static void kagi__harden(void)
{
    struct rlimit rl = {0, 0};
    if (setrlimit(RLIMIT_CORE, &rl) != 0) kagi__log(KAGI__LOG_WARN, "cannot turn core dumps off: %s", strerror(errno));
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0)
        kagi__log(KAGI__LOG_WARN, "cannot mark the process non-dumpable: %s", strerror(errno));
}

int kagi_kme_run(const kagi_kme_config *c)
{
    /* Signals go to the main thread only: block them before any thread
       starts (the store's committer included). */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    kagi__harden();

    int logfd = 2;
    if (c->log[0] && strcmp(c->log, "-") != 0) {
        logfd = open(c->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
        KAGI__FAIL_IF(logfd < 0, KAGI_ERR_IO, "log %s: %s", c->log, strerror(errno));
    }
    kagi__log_setup(logfd, c->log_level);

    kagi__kme k;
    memset(&k, 0, sizeof k);
    k.c = c;
    k.lim = (kagi_etsi_limits){c->key_size, c->min_key_size, c->max_key_size, c->max_keys_per_request,
                               c->max_sae_id_count};
    uint8_t akey[KAGI_STORE_KEY_BYTES];
    int e = kagi_store_key_read(c->store_key, akey);
    if (!e) {
        kagi_store_opts so = {.unit_bytes = c->key_size / 8, .commit_interval_us = c->commit_interval_us,
                              .pace_fsyncs = c->commit_pacing,
                              .pending_ttl_s = c->pending_ttl_s};
        e = kagi_store_open(&k.store, c->store, akey, &so);
    }
    kagi_wipe(akey, sizeof akey);
    if (!e) e = kagi__tls(&k);
    if (!e) e = kagi__sources(&k);
    if (!e) e = kagi__relay_init(&k);
    if (!e) e = kagi__workers(&k);
    if (!e) {
        size_t local = 0;
        for (size_t i = 0; i < c->n_saes; i++) local += !strcmp(c->saes[i].kme, c->kme_id);
        kagi__log(KAGI__LOG_INFO, "KME %s serving ETSI GS QKD 014 on https://%s:%u (mutual TLS 1.2+, "
                  "%zu SAEs here, %u worker%s, store %s, core dumps off)", c->kme_id, c->listen_host,
                  k.port, local, k.n_workers, k.n_workers == 1 ? "" : "s", c->store);
        e = kagi__write_ready(&k);
    }
    if (!e) {
        int sig = 0;
        sigwait(&set, &sig);
        kagi__log(KAGI__LOG_INFO, "signal %d: shutting down", sig);
    }
    char why[512] = "";
    if (e) snprintf(why, sizeof why, "%s", kagi_errdetail());
    /* Stop taking requests, let the ones in flight finish (bounded). */
    atomic_store(&k.draining, 1);
    for (unsigned i = 0; k.workers && i < k.n_workers; i++)
        if (k.workers[i].lfd >= 0) shutdown(k.workers[i].lfd, SHUT_RD); /* no new connections */
    double until = kagi__now() + 5;
    while (atomic_load(&k.inflight) > 0 && kagi__now() < until) {
        struct timespec ts = {0, 2000000};
        nanosleep(&ts, NULL);
    }
    /* Relay threads use the store and the workers' queues: they end within
       their network timeouts. */
    if (atomic_load(&k.relays) > 0)
        kagi__log(KAGI__LOG_INFO, "waiting for %d relays to finish", atomic_load(&k.relays));
    while (atomic_load(&k.relays) > 0) {
        struct timespec ts = {0, 5000000};
        nanosleep(&ts, NULL);
    }
    if (k.workers) kagi__workers_stop(&k);
    for (size_t i = 0; k.devs && i < c->n_links; i++) kagi_device_stop(k.devs[i]);
    kagi_store_stats st = {0};
    if (k.store) kagi_store_get_stats(k.store, &st);
    kagi_store_close(k.store);
    if (k.workers) kagi__workers_free(&k);
    kagi__relay_free(&k);
    SSL_CTX_free(k.ctx);
    free(k.devs);
    free(k.link_ids);
    free(k.out_ids);
    free(k.in_ids);
    if (e) {
        kagi__log(KAGI__LOG_ERROR, "%s", why);
        if (logfd != 2) close(logfd);
        kagi__log_setup(2, KAGI__LOG_WARN);
        return kagi__err(e, "%s", why);
    }
    kagi__log(KAGI__LOG_INFO, "stopped cleanly: %llu store operations in %llu commits; %llu fsyncs, "
              "mean %.3f ms, max %.3f ms", (unsigned long long)st.ops, (unsigned long long)st.commits,
              (unsigned long long)st.fsyncs, st.fsyncs ? (double)st.fsync_us / (double)st.fsyncs / 1e3 : 0.0,
              (double)st.fsync_max_us / 1e3);
    if (c->ready_file[0]) unlink(c->ready_file);
    if (logfd != 2) close(logfd);
    kagi__log_setup(2, KAGI__LOG_WARN);
    return KAGI_OK;
}
