/* The peer protocol (docs/peer.md): keys for SAEs at another KME.
 *
 * The master's KME takes the keys from its own direction of the first
 * link (committed before anything is sent, so a crash can never reissue
 * them) and tells the neighbour where they start; the neighbour takes the
 * same bytes from its copy of that direction. A KME further on the path
 * gets the keys one-time padded with its own link's key and authenticated
 * with a Wegman-Carter tag keyed from the same link. The last KME keeps
 * them for the slaves; each answer travels back along the path, and the
 * master gets its keys only once the slaves' KME has them.
 *
 * Each relay runs on its own short-lived thread and makes blocking calls
 * (store operations, the next hop over mutual TLS with timeouts); the
 * epoll workers never wait on a peer. */
#define _GNU_SOURCE
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "../kms/kms_internal.h"
#include "net_internal.h"

#define KAGI__MAX_RELAYS 64       /* relay threads at once; more get 503 */
#define KAGI__HOP_TIMEOUT 4.0     /* seconds a hop may take, per hop still ahead */
#define KAGI__BLOCK_WAIT 3.0      /* seconds to wait for a block the peer already has */

struct kagi__pconn {
    SSL *ssl;
    int fd;
    kagi__pconn *next;
};

static void kagi__pconn_free(kagi__pconn *p)
{
    if (!p) return;
    SSL_free(p->ssl);
    close(p->fd);
    free(p);
}

int kagi__relay_init(kagi__kme *k)
{
    const kagi_kme_config *c = k->c;
    k->peers = calloc(c->n_links + 1, sizeof *k->peers);
    KAGI__FAIL_IF(!k->peers, KAGI_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < c->n_links; i++) {
        pthread_mutex_init(&k->peers[i].mu, NULL);
        pthread_mutex_init(&k->peers[i].send, NULL);
    }
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    KAGI__FAIL_IF(!ctx, KAGI_ERR_NOMEM, "TLS: cannot create a client context");
    k->cctx = ctx;
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
    int ok = SSL_CTX_set_cipher_list(ctx, "ECDHE+AESGCM:ECDHE+CHACHA20") == 1 &&
             SSL_CTX_use_certificate_chain_file(ctx, c->cert) == 1 &&
             SSL_CTX_use_PrivateKey_file(ctx, c->key, SSL_FILETYPE_PEM) == 1 &&
             SSL_CTX_load_verify_locations(ctx, c->client_ca, NULL) == 1;
    if (!ok) {
        char buf[256];
        ERR_error_string_n(ERR_get_error(), buf, sizeof buf);
        ERR_clear_error();
        return kagi__err(KAGI_ERR_ARG, "TLS: peer client context (%s, %s, %s): %s", c->cert, c->key,
                         c->client_ca, buf);
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    SSL_CTX_set_verify_depth(ctx, 4);
    return KAGI_OK;
}

void kagi__relay_free(kagi__kme *k)
{
    for (size_t i = 0; k->peers && i < k->c->n_links; i++) {
        for (kagi__pconn *p = k->peers[i].idle, *n; p; p = n) {
            n = p->next;
            kagi__pconn_free(p);
        }
        pthread_mutex_destroy(&k->peers[i].mu);
        pthread_mutex_destroy(&k->peers[i].send);
    }
    free(k->peers);
    k->peers = NULL;
    SSL_CTX_free(k->cctx);
    k->cctx = NULL;
}

static void kagi__timeouts(int fd, double s)
{
    struct timeval tv = {(time_t)s, (suseconds_t)((s - (double)(time_t)s) * 1e6)};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

/* A new mutual-TLS connection to link li's peer, whose certificate must
 * chain to client_ca and carry CN = the peer's KME id. */
static kagi__pconn *kagi__pconnect(kagi__kme *k, long li, double timeout, char *err, size_t cap)
{
    const kagi_kme_link_cfg *l = &k->c->links[li];
    struct addrinfo hints = {0}, *ai = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    char port[16];
    snprintf(port, sizeof port, "%u", l->peer_port);
    int gai = getaddrinfo(l->peer_host, port, &hints, &ai);
    if (gai) {
        snprintf(err, cap, "%s: %s", l->peer_host, gai_strerror(gai));
        return NULL;
    }
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd >= 0) kagi__timeouts(fd, timeout); /* connect honours SO_SNDTIMEO */
    if (fd < 0 || connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
        snprintf(err, cap, "connect to %.100s:%u: %s", l->peer_host, l->peer_port, strerror(errno));
        freeaddrinfo(ai);
        if (fd >= 0) close(fd);
        return NULL;
    }
    freeaddrinfo(ai);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    kagi__pconn *p = calloc(1, sizeof *p);
    SSL *ssl = p ? SSL_new(k->cctx) : NULL;
    if (!ssl || SSL_set_fd(ssl, fd) != 1) {
        snprintf(err, cap, "out of memory");
        SSL_free(ssl);
        free(p);
        close(fd);
        return NULL;
    }
    p->ssl = ssl;
    p->fd = fd;
    ERR_clear_error();
    if (SSL_connect(ssl) != 1) {
        long v = SSL_get_verify_result(ssl);
        char buf[200];
        ERR_error_string_n(ERR_get_error(), buf, sizeof buf);
        ERR_clear_error();
        snprintf(err, cap, "TLS with %.100s:%u: %.100s", l->peer_host, l->peer_port,
                 v != X509_V_OK ? X509_verify_cert_error_string(v) : buf);
        kagi__pconn_free(p);
        return NULL;
    }
    /* the peer must be the KME the link names */
    X509 *cert = SSL_get0_peer_certificate(ssl);
    char cn[KAGI_SAE_ID_MAX + 2] = "";
    if (cert) X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn, sizeof cn);
    if (strcmp(cn, l->peer) != 0) {
        snprintf(err, cap, "%.100s:%u presented CN=%s, not KME %s", l->peer_host, l->peer_port, cn, l->peer);
        kagi__pconn_free(p);
        return NULL;
    }
    return p;
}

static int kagi__ssl_all(SSL *ssl, const void *b, size_t n)
{
    const uint8_t *p = b;
    while (n) {
        int w = SSL_write(ssl, p, n > (1u << 30) ? 1 << 30 : (int)n);
        if (w <= 0) return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Read one response: status, and the body into resp (cut to rcap - 1,
 * NUL-terminated). -1 on an I/O error (*got says whether any byte came). */
static int kagi__read_resp(SSL *ssl, int *status, char *resp, size_t rcap, int *keep, int *got)
{
    char buf[16384];
    size_t n = 0, head = 0;
    *got = 0;
    for (;;) {
        if (n == sizeof buf) return -1;
        int r = SSL_read(ssl, buf + n, (int)(sizeof buf - n));
        if (r <= 0) return -1;
        *got = 1;
        n += (size_t)r;
        char *e = NULL;
        for (size_t i = 3; i < n && !e; i++)
            if (!memcmp(buf + i - 3, "\r\n\r\n", 4)) e = buf + i + 1;
        if (!e) continue;
        head = (size_t)(e - buf);
        break;
    }
    int st = 0;
    if (sscanf(buf, "HTTP/1.%*[01] %3d", &st) != 1 || st < 100) return -1;
    size_t clen = 0;
    *keep = 1;
    for (char *line = memchr(buf, '\n', head); line && (size_t)(line - buf) < head; line = memchr(line + 1, '\n', head - (size_t)(line + 1 - buf))) {
        char *l = line + 1;
        if (!strncasecmp(l, "Content-Length:", 15)) clen = (size_t)strtoul(l + 15, NULL, 10);
        else if (!strncasecmp(l, "Connection:", 11) && strstr(l, "close") && strstr(l, "close") < (char *)memchr(l, '\n', head - (size_t)(l - buf))) *keep = 0;
    }
    if (clen > (1u << 20)) return -1;
    char *body = malloc(clen + 1);
    if (!body) return -1;
    size_t have = n - head < clen ? n - head : clen;
    memcpy(body, buf + head, have);
    while (have < clen) {
        int r = SSL_read(ssl, body + have, (int)(clen - have));
        if (r <= 0) {
            free(body);
            return -1;
        }
        have += (size_t)r;
    }
    body[clen] = '\0';
    snprintf(resp, rcap, "%s", body);
    free(body);
    *status = st;
    return 0;
}

/* POST body to link li's peer; its status in *status and body in resp.
 * -1 with err set when no answer came. A kept-alive connection that the
 * peer closed meanwhile is replaced once (nothing was read from it, so
 * the message may or may not have arrived: a second delivery is refused
 * by position, never applied twice). */
static int kagi__peer_post(kagi__kme *k, long li, const char *body, size_t len, double timeout, int *status,
                           char *resp, size_t rcap, char *err, size_t ecap)
{
    kagi__peer *pe = &k->peers[li];
    const kagi_kme_link_cfg *l = &k->c->links[li];
    char head[512];
    int hl = snprintf(head, sizeof head,
                      "POST " KAGI_PEER_PATH " HTTP/1.1\r\nHost: %s:%u\r\nContent-Type: application/json\r\n"
                      "Content-Length: %zu\r\n\r\n", l->peer_host, l->peer_port, len);
    for (int attempt = 0; attempt < 2; attempt++) {
        pthread_mutex_lock(&pe->mu);
        kagi__pconn *p = pe->idle;
        if (p) pe->idle = p->next;
        pthread_mutex_unlock(&pe->mu);
        int reused = p != NULL;
        if (!p) p = kagi__pconnect(k, li, timeout, err, ecap);
        if (!p) return -1;
        kagi__timeouts(p->fd, timeout);
        int keep = 0, got = 0;
        ERR_clear_error();
        int e = kagi__ssl_all(p->ssl, head, (size_t)hl) || kagi__ssl_all(p->ssl, body, len) ||
                kagi__read_resp(p->ssl, status, resp, rcap, &keep, &got);
        if (!e) {
            if (keep) {
                pthread_mutex_lock(&pe->mu);
                p->next = pe->idle;
                pe->idle = p;
                pthread_mutex_unlock(&pe->mu);
            } else {
                kagi__pconn_free(p);
            }
            return 0;
        }
        kagi__pconn_free(p);
        ERR_clear_error();
        snprintf(err, ecap, "no answer from %s at %.100s:%u%s", l->peer, l->peer_host, l->peer_port,
                 errno == EAGAIN || errno == EWOULDBLOCK ? " within the timeout" : "");
        if (!reused || got) return -1;
    }
    return -1;
}

/* The message of a JSON error body, or the body itself; its length in *n. */
static const char *kagi__why(const char *resp, int *n)
{
    const char *m = strstr(resp, "\"message\":\"");
    m = m ? m + 11 : resp;
    const char *q = strchr(m, '"');
    *n = q ? (int)(q - m) : (int)strlen(m);
    if (*n > 200) *n = 200;
    return m;
}

/* Send the keys of m (its header and key_IDs set by the caller; K holds
 * their bytes, m->n_keys * m->size) over link li to m->path[0]: for
 * "direct", the link's key at the positions in at (the first hop); for
 * "otp", one-time padded with fresh link key, which this sets in m with
 * the tags. 0 when path[0] answered 200; -2 when it says this end is
 * behind (its front in *front); else -1 with why. */
static int kagi__send(kagi__kme *k, long li, kagi_peer_msg *m, const uint8_t *K, const kagi_store_key *at,
                      int *status, char *why, size_t wcap, kagi_store_key *front)
{
    const kagi_kme_config *cfg = k->c;
    const unsigned n = m->n_keys;
    const size_t size = m->size;
    snprintf(m->link, sizeof m->link, "%s", cfg->links[li].name);
    int rc = -1;
    *status = 0;
    kagi_store_op pad;
    memset(&pad, 0, sizeof pad);
    if (m->mode == KAGI_PEER_DIRECT) {
        for (unsigned i = 0; i < n; i++) {
            m->keys[i].block = at[i].block;
            m->keys[i].off = at[i].block_off;
        }
    } else {
        /* a pad and a MAC key per key from this KME's direction of link li,
           taken for good before anything is sent */
        pad.kind = KAGI_STORE_ISSUE;
        pad.link = k->out_ids[li];
        pad.master = m->master;
        pad.n_slaves = 0;
        pad.number = n;
        pad.size_bytes = size + KAGI_PEER_MAC_BYTES;
        if (kagi_store_run(k->store, &pad) != KAGI_OK || pad.result != KAGI_STORE_DONE) {
            *status = pad.result == KAGI_STORE_NO_KEY ? 503 : 500;
            snprintf(why, wcap, "no key on link %s to %s for the one-time pad", m->link, m->path[0]);
            goto out;
        }
        if (m->ct) kagi_wipe(m->ct, (size_t)n * size); /* a ciphertext of another hop or try */
        free(m->ct);
        m->ct = malloc((size_t)n * size);
        if (!m->ct) {
            snprintf(why, wcap, "out of memory");
            goto out;
        }
        for (unsigned i = 0; i < n; i++) {
            const uint8_t *p = pad.material + (size_t)i * pad.size_bytes;
            m->keys[i].block = pad.keys[i].block;
            m->keys[i].off = pad.keys[i].block_off;
            for (size_t j = 0; j < size; j++) m->ct[(size_t)i * size + j] = K[(size_t)i * size + j] ^ p[j];
            kagi_peer_tag(m, i, p + size, m->keys[i].tag);
        }
    }
    char *body = NULL;
    size_t blen = 0;
    if (kagi_peer_write(m, &body, &blen) != KAGI_OK) {
        snprintf(why, wcap, "out of memory");
        goto out;
    }
    char resp[1024], err[512];
    double timeout = KAGI__BLOCK_WAIT + KAGI__HOP_TIMEOUT * m->n_path;
    if (kagi__peer_post(k, li, body, blen, timeout, status, resp, sizeof resp, err, sizeof err) != 0) {
        snprintf(why, wcap, "%.300s", err);
        *status = 0;
    } else if (*status != 200) {
        int wl;
        const char *w = kagi__why(resp, &wl);
        snprintf(why, wcap, "%s answered %d: %.*s", m->path[0], *status, wl, w);
        json_t *o = *status == 400 ? json_loads(resp, 0, NULL) : NULL;
        json_t *f = json_object_get(o, "front");
        json_t *fb = json_object_get(f, "block"), *fo = json_object_get(f, "offset");
        if (json_is_integer(fb) && json_is_integer(fo) && json_integer_value(fb) >= 0 &&
            json_integer_value(fo) >= 0 && json_integer_value(fo) <= (json_int_t)KAGI_MAX_BLOCK_BYTES) {
            front->block = (int64_t)json_integer_value(fb);
            front->block_off = (uint32_t)json_integer_value(fo);
            rc = -2;
        }
        json_decref(o);
    } else {
        rc = 0;
    }
    free(body);
out:
    kagi_store_op_clear(&pad);
    return rc;
}

/* This KME's direction of link li is behind the peer's copy (the peer
 * took or dropped bytes this end still has, as after a restore from a
 * backup): drop them here too, so they are never offered again. */
static void kagi__catch_up(kagi__kme *k, long li, const kagi_store_key *front)
{
    kagi_store_op op;
    memset(&op, 0, sizeof op);
    op.kind = KAGI_STORE_TAKE_AT;
    op.link = k->out_ids[li];
    op.at = front;
    op.number = 1;
    op.size_bytes = 0;
    int e = kagi_store_run(k->store, &op);
    kagi__log(KAGI__LOG_WARN, "link %s: %s's copy of this KME's direction starts at %lld:%u; key before it "
              "dropped here too%s", k->c->links[li].name, k->c->links[li].peer, (long long)front->block,
              front->block_off, e || op.result != KAGI_STORE_DONE ? " (failed)" : "");
    kagi_store_op_clear(&op);
}

/* Send keys over link li; a one-time-padded send that finds this end
 * behind its peer catches up and tries once more with fresh pads. The
 * caller holds link li's send lock: the receiver drops whatever lies
 * before a position it is told of, so two messages over one link must
 * reach it in the order their key was taken. */
static int kagi__forward(kagi__kme *k, long li, kagi_peer_msg *m, const uint8_t *K, const kagi_store_key *at,
                         int *status, char *why, size_t wcap, kagi_store_key *front)
{
    int rc = kagi__send(k, li, m, K, at, status, why, wcap, front);
    if (rc == -2) kagi__catch_up(k, li, front); /* under the lock: no pad taken meanwhile */
    if (rc == -2 && m->mode == KAGI_PEER_OTP) rc = kagi__send(k, li, m, K, at, status, why, wcap, front);
    return rc;
}

static void kagi__log_lost(const kagi_store_op *op, const char *why)
{
    for (unsigned i = 0; i < op->n_keys; i++) {
        char u[37];
        kagi_uuid_format(op->keys[i].id, u);
        kagi__log(KAGI__LOG_WARN, "relay: key_ID=%s taken but not delivered (lost, never reused): %s", u, why);
    }
}

static int kagi__originate_once(kagi__call *c);
static int kagi__originate_locked(kagi__call *c);

/* enc_keys at the master's KME for slaves at another KME. */
static void kagi__originate(kagi__call *c)
{
    kagi_store_op *op = &c->op;
    kagi_store_op again = *op; /* the request, before the store fills it in */
    for (int attempt = 0;; attempt++) {
        int rc = kagi__originate_once(c);
        if (rc != -2 || attempt == 1) return;
        /* this end was behind its neighbour and has caught up: the keys
           taken were lost (logged); take fresh ones */
        *op = again;
    }
}

static int kagi__originate_once(kagi__call *c)
{
    kagi__kme *k = c->k;
    pthread_mutex_t *lock = &k->peers[c->first_link].send;
    pthread_mutex_lock(lock);
    int rc = kagi__originate_locked(c);
    pthread_mutex_unlock(lock);
    return rc;
}

static int kagi__originate_locked(kagi__call *c)
{
    kagi__kme *k = c->k;
    kagi_store_op *op = &c->op;
    if (kagi_store_run(k->store, op) != KAGI_OK) {
        op->result = KAGI_STORE_FAILED;
        snprintf(op->msg, sizeof op->msg, "key store unavailable");
    }
    if (op->result != KAGI_STORE_DONE) return 0;
    kagi_peer_msg m;
    memset(&m, 0, sizeof m);
    m.mode = KAGI_PEER_DIRECT;
    snprintf(m.master, sizeof m.master, "%s", c->caller);
    snprintf(m.slaves[m.n_slaves++], sizeof m.slaves[0], "%s", c->r.sae);
    for (unsigned i = 0; i < c->r.n_extra; i++) snprintf(m.slaves[m.n_slaves++], sizeof m.slaves[0], "%s", c->r.extra[i]);
    memcpy(m.path, c->path, sizeof m.path);
    m.n_path = c->n_path;
    m.size = op->size_bytes;
    m.keys = calloc(op->n_keys, sizeof *m.keys);
    char why[400] = "out of memory";
    int status = 0;
    int rc = -1;
    kagi_store_key front = {0};
    if (m.keys) {
        m.n_keys = op->n_keys;
        for (unsigned i = 0; i < op->n_keys; i++) memcpy(m.keys[i].id, op->keys[i].id, KAGI_KEY_ID_BYTES);
        rc = kagi__forward(k, c->first_link, &m, op->material, op->keys, &status, why, sizeof why, &front);
    }
    kagi_peer_msg_clear(&m);
    if (rc == 0) {
        kagi__log(KAGI__LOG_INFO, "relay: %u key%s for %s -> %s agreed along %s%s%s", op->n_keys,
                  op->n_keys == 1 ? "" : "s", c->caller, c->r.sae, c->path[0], c->n_path > 1 ? "..." : "",
                  c->n_path > 1 ? c->path[c->n_path - 1] : "");
        return 0;
    }
    kagi__log_lost(op, why);
    kagi_store_op_clear(op);
    op->result = KAGI_STORE_FAILED;
    snprintf(op->msg, sizeof op->msg, "relay to KME %.64s failed: %.100s", c->path[c->n_path - 1], why);
    return rc;
}

static void kagi__pfail_call(kagi__call *c, int status, const char *fmt, ...) KAGI__PRINTF(3, 4);
static void kagi__pfail_call(kagi__call *c, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->pmsg, sizeof c->pmsg, fmt, ap);
    va_end(ap);
    c->pstatus = status;
    kagi__log(status >= 500 ? KAGI__LOG_WARN : KAGI__LOG_ERROR, "peer %s: %d %s", c->from, status, c->pmsg);
}

/* A peer message at a KME on the path. */
static void kagi__receive(kagi__call *c)
{
    kagi__kme *k = c->k;
    const kagi_kme_config *cfg = k->c;
    kagi_peer_msg m;
    uint8_t *K = NULL;
    size_t klen = 0;
    kagi_store_op put;
    memset(&put, 0, sizeof put);
    if (kagi_peer_parse(&m, c->pbody, c->plen) != KAGI_OK) {
        kagi__pfail_call(c, 400, "%s", m.message);
        return;
    }
    long li = -1;
    for (size_t i = 0; i < cfg->n_links; i++)
        if (!strcmp(cfg->links[i].name, m.link)) li = (long)i;
    if (li < 0 || strcmp(cfg->links[li].peer, c->from) != 0) {
        kagi__pfail_call(c, 400, "link %s is not a link between %s and %s", m.link, c->from, cfg->kme_id);
        goto out;
    }
    if (strcmp(m.path[0], cfg->kme_id) != 0) {
        kagi__pfail_call(c, 400, "path starts at %s, not at this KME (%s)", m.path[0], cfg->kme_id);
        goto out;
    }
    int last = m.n_path == 1;
    if (last) {
        for (unsigned i = 0; i < m.n_slaves; i++) {
            const kagi_kme_sae_cfg *s = kagi_kme_config_sae(cfg, m.slaves[i], strlen(m.slaves[i]));
            if (!s || strcmp(s->kme, cfg->kme_id) != 0) {
                kagi__pfail_call(c, 400, "slave SAE %s is not attached to %s", m.slaves[i], cfg->kme_id);
                goto out;
            }
        }
        if (!kagi_kme_config_sae(cfg, m.master, strlen(m.master))) {
            kagi__pfail_call(c, 400, "unknown master SAE %s", m.master);
            goto out;
        }
    }
    long next = -1;
    if (!last) {
        next = kagi__link_to(cfg, m.path[1]);
        if (next < 0 || !strcmp(m.path[1], cfg->kme_id)) {
            kagi__pfail_call(c, 400, "no link from %s to the next hop %s", cfg->kme_id, m.path[1]);
            goto out;
        }
    }
    /* The same bytes at this end: the sender's direction of the link. */
    size_t need = m.size + (m.mode == KAGI_PEER_OTP ? KAGI_PEER_MAC_BYTES : 0);
    kagi_store_key *at = calloc(m.n_keys, sizeof *at);
    if (!at) {
        kagi__pfail_call(c, 503, "out of memory");
        goto out;
    }
    for (unsigned i = 0; i < m.n_keys; i++) {
        at[i].block = m.keys[i].block;
        at[i].block_off = m.keys[i].off;
    }
    kagi_store_op *op = &c->op;
    double until = kagi__now() + KAGI__BLOCK_WAIT;
    for (;;) {
        memset(op, 0, sizeof *op);
        op->kind = KAGI_STORE_TAKE_AT;
        op->link = k->in_ids[li];
        op->at = at;
        op->number = m.n_keys;
        op->size_bytes = need;
        if (kagi_store_run(k->store, op) != KAGI_OK) op->result = KAGI_STORE_FAILED;
        /* the sender may have stored the block a moment before this KME */
        if (op->result != KAGI_STORE_NO_KEY || kagi__now() > until) break;
        struct timespec ts = {0, 20000000};
        nanosleep(&ts, NULL);
    }
    free(at);
    if (op->result != KAGI_STORE_DONE) {
        c->pfront_block = op->result == KAGI_STORE_BAD_ID ? op->front_block : -1;
        c->pfront_off = op->front_off;
        kagi__pfail_call(c, op->result == KAGI_STORE_BAD_ID ? 400 : 503, "%s", op->msg);
        goto out;
    }
    klen = (size_t)m.n_keys * m.size;
    K = malloc(klen ? klen : 1);
    if (!K) {
        kagi__pfail_call(c, 503, "out of memory");
        goto out;
    }
    for (unsigned i = 0; i < m.n_keys; i++) {
        const uint8_t *p = op->material + (size_t)i * need;
        uint8_t *key = K + (size_t)i * m.size;
        if (m.mode == KAGI_PEER_DIRECT) {
            memcpy(key, p, m.size);
            continue;
        }
        if (!kagi_peer_tag_ok(&m, i, p + m.size)) {
            char u[37];
            kagi_uuid_format(m.keys[i].id, u);
            kagi__pfail_call(c, 400, "the tag of key_ID %s does not verify: message altered, or the two "
                             "ends' key differs; %u keys dropped", u, m.n_keys);
            goto out;
        }
        for (size_t j = 0; j < m.size; j++) key[j] = m.ct[(size_t)i * m.size + j] ^ p[j];
    }
    kagi_store_op_clear(op);
    if (last) {
        /* the store takes key_IDs as one array */
        uint8_t(*ids)[KAGI_KEY_ID_BYTES] = malloc((size_t)m.n_keys * KAGI_KEY_ID_BYTES);
        if (!ids) {
            kagi__pfail_call(c, 503, "out of memory");
            goto out;
        }
        for (unsigned i = 0; i < m.n_keys; i++) memcpy(ids[i], m.keys[i].id, KAGI_KEY_ID_BYTES);
        put.kind = KAGI_STORE_PUT;
        put.link = k->in_ids[li];
        put.master = m.master;
        for (unsigned i = 0; i < m.n_slaves; i++) put.slaves[i] = m.slaves[i];
        put.n_slaves = m.n_slaves;
        put.number = m.n_keys;
        put.size_bytes = m.size;
        put.ids = (const uint8_t(*)[KAGI_KEY_ID_BYTES])ids;
        put.put = K;
        if (kagi_store_run(k->store, &put) != KAGI_OK) put.result = KAGI_STORE_FAILED;
        if (put.result == KAGI_STORE_DONE) {
            c->pstatus = 200;
            c->pkeys = m.n_keys;
            char u[37];
            kagi_uuid_format(ids[0], u);
            kagi__log(KAGI__LOG_INFO, "peer %s: %u key%s for %s -> %s stored for the slaves (first key_ID=%s)",
                      c->from, m.n_keys, m.n_keys == 1 ? "" : "s", m.master, m.slaves[0], u);
        } else {
            kagi__pfail_call(c, put.result == KAGI_STORE_BAD_ID ? 400 : 503, "%s", put.msg);
        }
        free(ids);
    } else {
        int status = 0;
        char why[400];
        kagi_store_key front = {0};
        /* the same keys, master and slaves on to the rest of the path */
        m.mode = KAGI_PEER_OTP;
        memmove(m.path, m.path + 1, (m.n_path - 1) * sizeof m.path[0]);
        m.n_path--;
        pthread_mutex_lock(&k->peers[next].send);
        int rc = kagi__forward(k, next, &m, K, NULL, &status, why, sizeof why, &front);
        pthread_mutex_unlock(&k->peers[next].send);
        if (rc == 0) {
            c->pstatus = 200;
            c->pkeys = m.n_keys;
            kagi__log(KAGI__LOG_INFO, "peer %s: %u key%s for %s -> %s relayed to %s", c->from, m.n_keys,
                      m.n_keys == 1 ? "" : "s", m.master, m.slaves[0], m.path[0]);
        } else {
            kagi__pfail_call(c, status == 400 ? 400 : 503, "%s", why);
        }
    }
out:
    if (K) {
        kagi_wipe(K, klen);
        free(K);
    }
    kagi_store_op_clear(&c->op);
    kagi_store_op_clear(&put);
    kagi_peer_msg_clear(&m);
}

static void *kagi__relay_main(void *arg)
{
    kagi__call *c = arg;
    kagi__kme *k = c->k;
    if (c->peer) kagi__receive(c);
    else kagi__originate(c);
    kagi__op_done(&c->op);
    atomic_fetch_sub(&k->relays, 1);
    return NULL;
}

int kagi__relay_start(kagi__call *c)
{
    kagi__kme *k = c->k;
    if (atomic_fetch_add(&k->relays, 1) >= KAGI__MAX_RELAYS) {
        atomic_fetch_sub(&k->relays, 1);
        return kagi__err(KAGI_ERR_EXHAUSTED, "%d relays in progress", KAGI__MAX_RELAYS);
    }
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&a, 256 * 1024);
    pthread_t t;
    int e = pthread_create(&t, &a, kagi__relay_main, c);
    pthread_attr_destroy(&a);
    if (e) {
        atomic_fetch_sub(&k->relays, 1);
        return kagi__err(KAGI_ERR_NOMEM, "cannot start a relay thread: %s", strerror(e));
    }
    return KAGI_OK;
}
