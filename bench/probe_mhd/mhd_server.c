/* mhd_server: a probe, not part of kagi. A minimal libmicrohttpd + GnuTLS
 * HTTPS server with mutual TLS that answers
 *   POST /api/v1/keys/SAE_B/enc_keys
 * with a fixed-size ETSI 014 body {"keys":[{"key_ID":"<uuid>","key":"<44 b64>"}]}
 * (same size as a real KME response for one 256-bit key), reading the
 * request body through MHD's upload callback, keep-alive on. No store work:
 * it measures what MHD + GnuTLS cost per request, to compare with kagi's
 * own HTTP layer over OpenSSL (src/net/http.c, src/net/kme.c).
 *
 * The client's identity is checked as kagi does: the certificate must
 * verify against the CA (gnutls_certificate_verify_peers2) and its subject
 * CN is read (MHD_CONNECTION_INFO_GNUTLS_SESSION +
 * gnutls_certificate_get_peers). This is done once per connection and kept
 * in MHD's socket context (--verify-each-request does it on every request).
 * MHD 0.9.x only *requests* the client certificate (GNUTLS_CERT_REQUEST);
 * a client without one completes the handshake and is refused here (the
 * connection is closed without an HTTP answer).
 *
 * --store FILE adds durable store work like kagi's (a stand-in, not
 * kagi's schema): the request is suspended (MHD_suspend_connection) and
 * queued to one store thread that group-commits all queued requests in
 * one SQLite transaction (WAL, synchronous=FULL: one fsync per batch),
 * each taking the oldest 32-byte key row (SELECT + DELETE) and writing a
 * delivery row (INSERT); then it resumes the connections
 * (MHD_resume_connection) and the handler answers with that key in base64.
 * No AEAD at rest (kagi decrypts each unit: ~1 us). This stand-in is
 * naive (sync on the commit path, autocheckpoint, 4 KiB pages) and costs
 * more than kagi's store; use --kagi-store for the real thing.
 *
 * --kagi-store DIR (only in mhd_server_kagi, built with -DWITH_KAGI_STORE
 * and linked with build/libkagi.a): kagi's own durable key store
 * (src/kms/store.c: SQLite WAL, AES-GCM rows, committer + syncer threads,
 * group commit), opened in DIR and filled with --store-keys random 256-bit
 * keys; each request is a KAGI_STORE_ISSUE op submitted with
 * kagi_store_submit while the MHD connection is suspended, resumed from
 * the op's done() callback, exactly the path kagi's KME takes
 * (src/net/kme.c) minus its log line.
 *
 * usage: mhd_server --pki DIR [--port P] [--threads N] [--turbo]
 *                   [--verify-each-request] [--store FILE | --kagi-store DIR]
 *                   [--store-keys N]
 * DIR holds ca.pem, KME_A.pem, KME_A.key (kagi_pki_make / kagi kme --make-pki).
 * --threads 0 (default): MHD_USE_EPOLL_INTERNAL_THREAD, one thread.
 * --threads N>1: the same plus MHD_OPTION_THREAD_POOL_SIZE N.
 * Prints "port P" on stdout when listening; runs until SIGTERM/SIGINT. */
#define _GNU_SOURCE
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <pthread.h>
#include <sqlite3.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <microhttpd.h>
#ifdef WITH_KAGI_STORE
#include "kagi/bits.h"
#include "kagi/error.h"
#include "kagi/kms.h"
#endif

typedef struct {
    int state; /* 0 unchecked, 1 ok, -1 refused */
    char cn[65];
    unsigned long requests;
} sock_ctx;

typedef struct req_ctx {
    char body[1024];
    size_t len;
    int too_big;
    int state; /* 0 reading, 1 queued to the store, 2 answer ready */
    struct MHD_Connection *conn;
    struct req_ctx *next;
    char out[160];
    int out_len, code;
#ifdef WITH_KAGI_STORE
    kagi_store_op op;
#endif
} req_ctx;

/* ---- the optional durable store (--store) ---- */
static sqlite3 *db;
static sqlite3_stmt *st_take, *st_del, *st_log;
static pthread_mutex_t q_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t q_cv = PTHREAD_COND_INITIALIZER;
static req_ctx *q_head, **q_tail = &q_head;
static unsigned long long n_commits, n_ops;

static void die_sql(const char *what)
{
    fprintf(stderr, "mhd_server: %s: %s\n", what, sqlite3_errmsg(db));
    exit(1);
}

static void store_open(const char *path, long keys)
{
    remove(path);
    if (sqlite3_open(path, &db) != SQLITE_OK) die_sql("open");
    if (sqlite3_exec(db,
                     "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
                     "CREATE TABLE keys(id INTEGER PRIMARY KEY, k BLOB NOT NULL);"
                     "CREATE TABLE delivered(key_id BLOB PRIMARY KEY, master TEXT, slave TEXT);",
                     NULL, NULL, NULL) != SQLITE_OK)
        die_sql("schema");
    sqlite3_stmt *ins;
    sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
    sqlite3_prepare_v2(db, "INSERT INTO keys(k) VALUES(randomblob(32))", -1, &ins, NULL);
    for (long i = 0; i < keys; i++) {
        if (sqlite3_step(ins) != SQLITE_DONE) die_sql("fill");
        sqlite3_reset(ins);
    }
    sqlite3_finalize(ins);
    if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) die_sql("commit");
    if (sqlite3_prepare_v2(db, "SELECT id, k FROM keys ORDER BY id LIMIT 1", -1, &st_take, NULL) ||
        sqlite3_prepare_v2(db, "DELETE FROM keys WHERE id = ?", -1, &st_del, NULL) ||
        sqlite3_prepare_v2(db, "INSERT INTO delivered(key_id, master, slave) VALUES(?, ?, ?)", -1, &st_log, NULL))
        die_sql("prepare");
}

static void b64(const unsigned char *in, int n, char *out)
{
    static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    int o = 0;
    for (int i = 0; i < n; i += 3) {
        unsigned v = (unsigned)in[i] << 16 | (i + 1 < n ? (unsigned)in[i + 1] << 8 : 0) | (i + 2 < n ? in[i + 2] : 0);
        out[o++] = t[v >> 18 & 63];
        out[o++] = t[v >> 12 & 63];
        out[o++] = i + 1 < n ? t[v >> 6 & 63] : '=';
        out[o++] = i + 2 < n ? t[v & 63] : '=';
    }
    out[o] = '\0';
}

/* One delivery inside the current transaction: take the oldest key. */
static void store_issue(req_ctx *rq)
{
    rq->code = 503;
    if (sqlite3_step(st_take) == SQLITE_ROW) {
        sqlite3_int64 id = sqlite3_column_int64(st_take, 0);
        unsigned char key[32];
        memcpy(key, sqlite3_column_blob(st_take, 1), 32);
        sqlite3_reset(st_take);
        sqlite3_bind_int64(st_del, 1, id);
        sqlite3_step(st_del);
        sqlite3_reset(st_del);
        unsigned char kid[16];
        gnutls_rnd(GNUTLS_RND_NONCE, kid, sizeof kid);
        sqlite3_bind_blob(st_log, 1, kid, 16, SQLITE_STATIC);
        sqlite3_bind_text(st_log, 2, "SAE_A", -1, SQLITE_STATIC);
        sqlite3_bind_text(st_log, 3, "SAE_B", -1, SQLITE_STATIC);
        sqlite3_step(st_log);
        sqlite3_reset(st_log);
        char k64[48];
        b64(key, 32, k64);
        memset(key, 0, sizeof key);
        rq->out_len = snprintf(rq->out, sizeof rq->out,
                               "{\"keys\":[{\"key_ID\":\"%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
                               "%02x%02x%02x%02x%02x%02x\",\"key\":\"%s\"}]}",
                               kid[0], kid[1], kid[2], kid[3], kid[4], kid[5], kid[6], kid[7], kid[8], kid[9],
                               kid[10], kid[11], kid[12], kid[13], kid[14], kid[15], k64);
        rq->code = 200;
    } else {
        sqlite3_reset(st_take);
        rq->out_len = snprintf(rq->out, sizeof rq->out, "{\"message\":\"no key\"}");
    }
}

static void *store_main(void *arg)
{
    (void)arg;
    for (;;) {
        pthread_mutex_lock(&q_mu);
        while (!q_head) pthread_cond_wait(&q_cv, &q_mu);
        req_ctx *batch = q_head;
        q_head = NULL;
        q_tail = &q_head;
        pthread_mutex_unlock(&q_mu);
        if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) die_sql("begin");
        for (req_ctx *r = batch; r; r = r->next) {
            store_issue(r);
            n_ops++;
        }
        if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) die_sql("commit"); /* fsync */
        n_commits++;
        for (req_ctx *r = batch, *nx; r; r = nx) {
            nx = r->next;
            r->state = 2;
            MHD_resume_connection(r->conn);
        }
    }
    return NULL;
}

static int verify_each;
static volatile sig_atomic_t stop;
static unsigned long long counter;

static void on_signal(int s)
{
    (void)s;
    stop = 1;
}

static char *slurp(const char *dir, const char *name)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "mhd_server: cannot open %s\n", path);
        exit(1);
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    if (fread(b, 1, (size_t)n, f) != (size_t)n) exit(1);
    b[n] = '\0';
    fclose(f);
    return b;
}

static void notify_conn(void *cls, struct MHD_Connection *c, void **socket_context,
                        enum MHD_ConnectionNotificationCode toe)
{
    (void)cls;
    (void)c;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) *socket_context = calloc(1, sizeof(sock_ctx));
    else {
        free(*socket_context);
        *socket_context = NULL;
    }
}

/* Verify the peer's certificate chain and read its subject CN. */
static int identify(struct MHD_Connection *c, sock_ctx *s)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_GNUTLS_SESSION);
    if (!ci || !ci->tls_session) return -1;
    gnutls_session_t ses = (gnutls_session_t)ci->tls_session;
    unsigned status = 0;
    if (gnutls_certificate_verify_peers2(ses, &status) != GNUTLS_E_SUCCESS || status != 0) return -1;
    unsigned n = 0;
    const gnutls_datum_t *peers = gnutls_certificate_get_peers(ses, &n);
    if (!peers || n == 0) return -1;
    gnutls_x509_crt_t crt;
    if (gnutls_x509_crt_init(&crt) != GNUTLS_E_SUCCESS) return -1;
    int rc = -1;
    if (gnutls_x509_crt_import(crt, &peers[0], GNUTLS_X509_FMT_DER) == GNUTLS_E_SUCCESS) {
        size_t len = sizeof s->cn;
        if (gnutls_x509_crt_get_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, 0, s->cn, &len) ==
                GNUTLS_E_SUCCESS &&
            len > 0)
            rc = 1;
        /* exactly one CN, as kagi requires */
        char extra[65];
        size_t l2 = sizeof extra;
        if (gnutls_x509_crt_get_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 1, 0, extra, &l2) !=
            GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE)
            rc = -1;
    }
    gnutls_x509_crt_deinit(crt);
    return rc;
}

#ifdef WITH_KAGI_STORE
static kagi_store *kstore;
static uint32_t klink;

static void kstore_done(kagi_store_op *op)
{
    req_ctx *rq = op->arg;
    if (op->result == KAGI_STORE_DONE && op->n_keys == 1) {
        char id[37], k64[64];
        kagi_uuid_format(op->keys[0].id, id);
        b64(op->material + op->keys[0].off, (int)op->keys[0].len, k64);
        rq->out_len = snprintf(rq->out, sizeof rq->out, "{\"keys\":[{\"key_ID\":\"%s\",\"key\":\"%s\"}]}", id, k64);
        rq->code = 200;
        kagi_wipe(k64, sizeof k64);
    } else {
        rq->out_len = snprintf(rq->out, sizeof rq->out, "{\"message\":\"no key available\"}");
        rq->code = 503;
    }
    kagi_store_op_clear(op);
    rq->state = 2;
    MHD_resume_connection(rq->conn);
}

static void kstore_open(const char *dir, long keys)
{
    char path[4096];
    uint8_t key[KAGI_STORE_KEY_BYTES];
    snprintf(path, sizeof path, "%s/store.key", dir);
    remove(path);
    if (kagi_store_key_new(path) || kagi_store_key_read(path, key)) goto fail;
    snprintf(path, sizeof path, "%s/kme.db", dir);
    remove(path);
    kagi_store_opts o = {.unit_bytes = 32};
    if (kagi_store_open(&kstore, path, key, &o)) goto fail;
    kagi_wipe(key, sizeof key);
    if (kagi_store_link(kstore, "loop", &klink)) goto fail;
    size_t per = 32768 * 32; /* 1 MiB blocks, as bench_kme writes them */
    uint8_t *blk = malloc(per);
    for (long b = 0; b * 32768 < keys; b++) {
        kagi_store_op op = {.kind = KAGI_STORE_ADD_BLOCK, .link = klink, .block = blk, .block_len = per,
                            .block_id = (uint64_t)b + 1};
        if (kagi_random_bytes(blk, per) || kagi_store_run(kstore, &op) || op.result != KAGI_STORE_DONE) goto fail;
        kagi_store_op_clear(&op);
    }
    kagi_wipe(blk, per);
    free(blk);
    return;
fail:
    fprintf(stderr, "mhd_server: kagi store: %s\n", kagi_errdetail());
    exit(1);
}
#endif

static enum MHD_Result reply(struct MHD_Connection *c, unsigned code, const char *body, size_t len)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!r) return MHD_NO;
    if (len) MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    if (code == 200) MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    enum MHD_Result ret = MHD_queue_response(c, code, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                               const char *version, const char *upload_data, size_t *upload_data_size,
                               void **con_cls)
{
    (void)cls;
    (void)version;
    req_ctx *rq = *con_cls;
    if (!rq) {
        /* Headers in: identify the SAE (once per connection), then wait for the body. */
        const union MHD_ConnectionInfo *si = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
        sock_ctx *s = si ? si->socket_context : NULL;
        if (!s) return MHD_NO;
        if (s->state == 0 || verify_each) s->state = identify(c, s);
        if (s->state < 0) return MHD_NO; /* close: no certificate or not from our CA */
        s->requests++;
        rq = calloc(1, sizeof *rq);
        if (!rq) return MHD_NO;
        *con_cls = rq;
        return MHD_YES;
    }
    if (*upload_data_size) {
        if (rq->len + *upload_data_size >= sizeof rq->body) rq->too_big = 1;
        else {
            memcpy(rq->body + rq->len, upload_data, *upload_data_size);
            rq->len += *upload_data_size;
        }
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (rq->state == 2) return reply(c, (unsigned)rq->code, rq->out, (size_t)rq->out_len);
    if (rq->state == 1) return MHD_YES;
    rq->body[rq->len] = '\0';
    if (rq->too_big) return reply(c, 413, "{\"message\":\"body too large\"}", 28);
    if (strcmp(method, "POST") || strcmp(url, "/api/v1/keys/SAE_B/enc_keys"))
        return reply(c, 400, "{\"message\":\"unsupported\"}", 25);
    /* Trivial stand-in for JSON parsing: the body must name a number. */
    if (!strstr(rq->body, "\"number\"")) return reply(c, 400, "{\"message\":\"bad body\"}", 22);
#ifdef WITH_KAGI_STORE
    if (kstore) {
        memset(&rq->op, 0, sizeof rq->op);
        rq->state = 1;
        rq->conn = c;
        rq->op.kind = KAGI_STORE_ISSUE;
        rq->op.link = klink;
        rq->op.master = "SAE_A";
        rq->op.slaves[0] = "SAE_B";
        rq->op.n_slaves = 1;
        rq->op.number = 1;
        rq->op.size_bytes = 32;
        rq->op.done = kstore_done;
        rq->op.arg = rq;
        MHD_suspend_connection(c);
        if (kagi_store_submit(kstore, &rq->op) != KAGI_OK) {
            MHD_resume_connection(c);
            rq->state = 2;
            rq->code = 503;
            rq->out_len = snprintf(rq->out, sizeof rq->out, "{\"message\":\"key store unavailable\"}");
        }
        return MHD_YES;
    }
#endif
    if (db) { /* durable store work on the store thread; answer when resumed */
        rq->state = 1;
        rq->conn = c;
        rq->next = NULL;
        MHD_suspend_connection(c);
        pthread_mutex_lock(&q_mu);
        *q_tail = rq;
        q_tail = &rq->next;
        pthread_cond_signal(&q_cv);
        pthread_mutex_unlock(&q_mu);
        return MHD_YES;
    }
    unsigned long long k = __atomic_fetch_add(&counter, 1, __ATOMIC_RELAXED);
    char out[160];
    int n = snprintf(out, sizeof out,
                     "{\"keys\":[{\"key_ID\":\"%08llx-0000-4000-8000-%012llx\","
                     "\"key\":\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\"}]}",
                     k & 0xffffffffULL, k);
    return reply(c, 200, out, (size_t)n);
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)c;
    (void)toe;
    free(*con_cls);
    *con_cls = NULL;
}

static const char *arg(int argc, char **argv, const char *name, const char *def)
{
    for (int i = 1; i + 1 < argc; i++)
        if (!strcmp(argv[i], name)) return argv[i + 1];
    return def;
}

static int flag(int argc, char **argv, const char *name)
{
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], name)) return 1;
    return 0;
}

int main(int argc, char **argv)
{
    const char *pki = arg(argc, argv, "--pki", NULL);
    if (!pki) {
        fprintf(stderr, "usage: mhd_server --pki DIR [--port P] [--threads N] [--turbo] [--verify-each-request]\n");
        return 2;
    }
    int port = atoi(arg(argc, argv, "--port", "0"));
    int threads = atoi(arg(argc, argv, "--threads", "0"));
    verify_each = flag(argc, argv, "--verify-each-request");
    const char *prio = arg(argc, argv, "--priorities", "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2");
    char *key = slurp(pki, "KME_A.key"), *cert = slurp(pki, "KME_A.pem"), *ca = slurp(pki, "ca.pem");
    unsigned flags = MHD_USE_TLS | MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_ERROR_LOG;
    const char *store = arg(argc, argv, "--store", NULL);
#ifdef WITH_KAGI_STORE
    const char *kdir = arg(argc, argv, "--kagi-store", NULL);
    if (kdir) {
        kstore_open(kdir, atol(arg(argc, argv, "--store-keys", "400000")));
        flags |= MHD_ALLOW_SUSPEND_RESUME;
        store = "kagi";
    }
#endif
    if (store && strcmp(store, "kagi")) {
        store_open(store, atol(arg(argc, argv, "--store-keys", "400000")));
        flags |= MHD_ALLOW_SUSPEND_RESUME;
        pthread_t th;
        pthread_create(&th, NULL, store_main, NULL);
    }
    if (flag(argc, argv, "--turbo")) flags |= MHD_USE_TURBO;
    struct MHD_OptionItem opts[] = {
        {MHD_OPTION_HTTPS_MEM_KEY, 0, key},
        {MHD_OPTION_HTTPS_MEM_CERT, 0, cert},
        {MHD_OPTION_HTTPS_MEM_TRUST, 0, ca},
        {MHD_OPTION_HTTPS_PRIORITIES, 0, (void *)prio},
        {MHD_OPTION_CONNECTION_LIMIT, 4096, NULL},
        {MHD_OPTION_CONNECTION_TIMEOUT, 30, NULL},
        {MHD_OPTION_CONNECTION_MEMORY_LIMIT, 16384, NULL},
        {MHD_OPTION_NOTIFY_CONNECTION, (intptr_t)notify_conn, NULL},
        {MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)completed, NULL},
        {threads > 1 ? MHD_OPTION_THREAD_POOL_SIZE : MHD_OPTION_END, threads, NULL},
        {MHD_OPTION_END, 0, NULL},
    };
    struct MHD_Daemon *d = MHD_start_daemon(flags, (uint16_t)port, NULL, NULL, handler, NULL,
                                            MHD_OPTION_ARRAY, opts, MHD_OPTION_END);
    if (!d) {
        fprintf(stderr, "mhd_server: MHD_start_daemon failed\n");
        return 1;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    printf("port %u\nmhd %s gnutls %s threads %d%s%s\n", di ? di->port : 0, MHD_get_version(),
           gnutls_check_version(NULL), threads > 1 ? threads : 1, (flags & MHD_USE_TURBO) ? " turbo" : "",
           !store ? "" : strcmp(store, "kagi") ? " + 1 store thread (SQLite WAL, synchronous=FULL, group commit)"
                                               : " + kagi's store (libkagi.a: committer, syncer, checkpointer threads)");
    fflush(stdout);
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    while (!stop) pause();
#ifdef WITH_KAGI_STORE
    if (kstore) {
        kagi_store_stats st;
        kagi_store_get_stats(kstore, &st);
        fprintf(stderr, "kagi store: %llu operations in %llu transactions (%.1f each), %llu fsyncs (mean %.2f ms, max %.2f ms)\n",
                (unsigned long long)st.ops, (unsigned long long)st.commits,
                st.commits ? (double)st.ops / (double)st.commits : 0.0, (unsigned long long)st.fsyncs,
                st.fsyncs ? (double)st.fsync_us / (double)st.fsyncs / 1e3 : 0.0, st.fsync_max_us / 1e3);
    }
#endif
    if (store && db) fprintf(stderr, "store: %llu operations in %llu commits (%.1f each)\n", n_ops, n_commits,
                       n_commits ? (double)n_ops / (double)n_commits : 0.0);
    MHD_stop_daemon(d);
    free(key);
    free(cert);
    free(ca);
    return 0;
}
