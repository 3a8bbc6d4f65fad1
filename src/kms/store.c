/* The durable key store: SQLite (WAL, synchronous=FULL), rows sealed with
 * AES-256-GCM, one committer thread running operations in batches (group
 * commit). See kagi/kms.h for the contract and docs/kme.md for the crash
 * argument.
 *
 * Schema
 *   meta(k, v)        version, unit, dbid (HKDF salt), check (sealed
 *                     constant: proves the at-rest key), nonce_hi
 *   links(id, name, last_block, next_seq)
 *   pool(id, block, off, nonce, ct)   id = link << 44 | seq: a link's units
 *                     are one contiguous id range, taken from its front
 *                     (read ahead KAGI__FRONT rows at a time; the rows a
 *                     batch took are deleted by one range DELETE before
 *                     its COMMIT)
 *   pending(id, key_id, link, master, slaves, remaining, created, nonce, ct)
 *                     issued keys; remaining = bitmask of slaves still due
 * Nonces: 4 random bytes chosen at each open, then a 64-bit counter whose
 * upper bound is persisted (nonce_hi) in the same transaction as any row
 * sealed under it, so a restart never reuses a counter value. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/kdf.h>

#include "kms_internal.h"

#define KAGI__MAX_LINKS 64
#define KAGI__SEQ_BITS 44
#define KAGI__TAG 16
#define KAGI__NONCE 12
#define KAGI__NONCE_CHUNK ((uint64_t)1 << 24)
#define KAGI__MAX_KEY_BYTES 65536
#define KAGI__STORE_LINK 99   /* internal op kind: register a link */
#define KAGI__STORE_SPLIT 98  /* internal op kind: split a link's blocks */
/* Commit pacing (kagi_store_opts.pace_fsyncs): commits start at least
 * twice the recent mean fsync time apart, so the disk flushes at most half
 * the time. On this project's VM, back-to-back fsyncs (~2,000/s) freeze
 * the whole guest for 5-17 ms every 100 ms; at ~1,000/s they do not
 * (docs/kme.md, "Flush pacing"). Capped at 0.7 ms: starts that far apart
 * (~1,400 fsyncs/s) never froze it, and where fsyncs are slower (0.5 ms
 * in its slow phases, no freezes) a gap of twice that only added latency
 * (cap 2 ms: 6 of 8 runs met the goal, 0.7 ms: 8 of 8). */
#define KAGI__PACE_MAX 0.0007
#define KAGI__WAL_RESTART 65536 /* WAL frames (64 MiB of 1 KiB pages) before the checkpointer restarts it */

enum {
    S_BEGIN, S_COMMIT, S_ROLLBACK, S_SP, S_REL, S_RBTO,
    S_POOL_SEL, S_POOL_FRONT, S_POOL_DEL_RANGE, S_POOL_DEL, S_POOL_UPD, S_POOL_INS,
    S_PEND_INS, S_PEND_SEL, S_PEND_DEL, S_PEND_UPD, S_LINK_UPD, S_META_SET, S_GC_SEL,
    S_LINK_INS, S_LINK_SEL, S_COUNT
};

static const char *const kagi__sql[S_COUNT] = {
    [S_BEGIN] = "BEGIN IMMEDIATE",
    [S_COMMIT] = "COMMIT",
    [S_ROLLBACK] = "ROLLBACK",
    [S_SP] = "SAVEPOINT op",
    [S_REL] = "RELEASE op",
    [S_RBTO] = "ROLLBACK TO op",
    [S_POOL_SEL] = "SELECT id, block, off, nonce, ct FROM pool WHERE id > ?1 AND id < ?2 ORDER BY id",
    [S_POOL_FRONT] = "SELECT id, block, off, nonce, ct FROM pool WHERE id > ?1 AND id < ?2 ORDER BY id LIMIT ?3",
    [S_POOL_DEL_RANGE] = "DELETE FROM pool WHERE id >= ?1 AND id <= ?2",
    [S_POOL_DEL] = "DELETE FROM pool WHERE id = ?1",
    [S_POOL_UPD] = "UPDATE pool SET off = ?2, nonce = ?3, ct = ?4 WHERE id = ?1",
    [S_POOL_INS] = "INSERT INTO pool(id, block, off, nonce, ct) VALUES(?1, ?2, ?3, ?4, ?5)",
    [S_PEND_INS] = "INSERT INTO pending(key_id, link, master, slaves, remaining, created, nonce, ct) "
                   "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    [S_PEND_SEL] = "SELECT key_id, link, master, slaves, remaining, nonce, ct FROM pending WHERE id = ?1",
    [S_PEND_DEL] = "DELETE FROM pending WHERE id = ?1",
    [S_PEND_UPD] = "UPDATE pending SET remaining = ?2 WHERE id = ?1",
    [S_LINK_UPD] = "UPDATE links SET last_block = ?2, next_seq = ?3 WHERE id = ?1",
    [S_META_SET] = "INSERT OR REPLACE INTO meta(k, v) VALUES(?1, ?2)",
    [S_GC_SEL] = "SELECT id, key_id, created FROM pending ORDER BY id LIMIT 256",
    [S_LINK_INS] = "INSERT OR IGNORE INTO links(name) VALUES(?1)",
    [S_LINK_SEL] = "SELECT id, last_block, next_seq FROM links WHERE name = ?1",
};

typedef struct kagi__link {
    char name[KAGI_LINK_NAME_MAX + 1];
    /* committer's working values (this batch) */
    uint64_t avail;
    int64_t last_block;
    int64_t next_seq;
    uint32_t split;   /* blocks' second halves go to this link (0: none) */
    /* the pool's front, consumed in memory: units up to cur are taken;
       those from del_lo (0: none) to cur are deleted in one statement
       before the batch commits (kagi__front_flush) */
    int64_t cur, del_lo;
} kagi__link;

/* Pool units read ahead from a link's front (ciphertext rows, as stored):
 * one SELECT per KAGI__FRONT units instead of one per key. Valid while
 * nobody but kagi__take changed the front; anything else (a split unit
 * resealed, skip_to, a dropped unit, a rollback) empties it. */
#define KAGI__FRONT 64
typedef struct kagi__unit {
    int64_t id;
    int64_t block;
    uint32_t off;
    uint8_t nonce[KAGI__NONCE];
    size_t nlen;
    uint8_t *ct;    /* NULL: the row is larger than a unit (never sealed here) */
    size_t ctlen;
} kagi__unit;

typedef struct kagi__front {
    kagi__unit u[KAGI__FRONT];
    uint8_t *buf;   /* KAGI__FRONT slots of unit_bytes + tag */
    size_t n, head;
} kagi__front;

typedef struct kagi__undo {
    uint8_t id[KAGI_KEY_ID_BYTES];
    int64_t prev;   /* value before the change, 0 if absent */
} kagi__undo;

struct kagi_store {
    sqlite3 *db;
    sqlite3_stmt *st[S_COUNT];
    EVP_CIPHER_CTX *enc, *dec;
    uint8_t salt[4];
    uint64_t nonce_ctr, nonce_lim;
    uint8_t rnd[4096];
    size_t rnd_off;
    kagi_store_opts o;
    /* committer-only state */
    kagi__link links[KAGI__MAX_LINKS + 1];  /* by id, 1.. */
    kagi__front *front[KAGI__MAX_LINKS + 1]; /* allocated at a link's first take */
    uint32_t n_links;
    kagi__idmap idx;
    int poison, poison_on_fail;   /* a write failed outside a savepoint */
    kagi__undo *undo;
    size_t n_undo, cap_undo;
    double next_gc;
    /* published after each commit, read by any thread */
    _Atomic uint64_t pub_pool[KAGI__MAX_LINKS + 1];
    _Atomic int64_t pub_last[KAGI__MAX_LINKS + 1];
    _Atomic uint64_t pub_pending;
    _Atomic uint64_t st_commits, st_ops, st_max_batch;
    _Atomic uint64_t st_fsyncs, st_fsync_us, st_fsync_max_us;
    /* queue */
    pthread_mutex_t mu;
    pthread_cond_t cv, ckcv;
    kagi_store_op *head, *tail;
    double fsync_avg;             /* recent mean WAL fsync time, s (pacing) */
    unsigned qlen;
    int closing, started;
    pthread_t thread;
    /* checkpointer: its own connection, so WAL checkpoints (page copies and
       the database file's fsync) stay off the commit path */
    sqlite3 *ckdb;
    pthread_t ckthread;
    int ck_started;
    /* a WAL restart needs a moment with no writer: the checkpointer asks
       (ck_pause), the committer stops between batches and says so
       (ck_paused), both on cv/ckcv under mu */
    int ck_pause, ck_paused;
    /* syncer: makes committed batches durable (fdatasync of the WAL) and
       only then completes their operations, while the committer already
       runs the next batch */
    int walfd;
    pthread_t sythread;
    int sy_started, sy_closing;
    pthread_cond_t sycv;
    kagi_store_op *sy_head, *sy_tail;
};

/* ---- small helpers ---- */

static int kagi__db_fail(kagi_store *s, const char *what)
{
    return kagi__err(KAGI_ERR_IO, "key store: %s: %s", what, sqlite3_errmsg(s->db));
}

static int kagi__exec(kagi_store *s, int which)
{
    sqlite3_stmt *st = s->st[which];
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) return kagi__db_fail(s, kagi__sql[which]);
    return KAGI_OK;
}

static int kagi__exec_sql(kagi_store *s, const char *sql)
{
    char *msg = NULL;
    if (sqlite3_exec(s->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        int e = kagi__err(KAGI_ERR_IO, "key store: %s: %s", sql, msg ? msg : "error");
        sqlite3_free(msg);
        return e;
    }
    return KAGI_OK;
}

static uint64_t kagi__link_lo(uint32_t link) { return (uint64_t)link << KAGI__SEQ_BITS; }

static void kagi__put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static void kagi__put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

/* ---- sealing ---- */

static int kagi__nonce(kagi_store *s, uint8_t n[KAGI__NONCE])
{
    /* kagi__reserve ran before any sealing in this batch. */
    if (s->nonce_ctr >= s->nonce_lim)
        return kagi__err(KAGI_ERR_ARG, "key store: nonce range exhausted in a batch");
    memcpy(n, s->salt, 4);
    uint64_t c = s->nonce_ctr++;
    for (int i = 0; i < 8; i++) n[4 + i] = (uint8_t)(c >> (56 - 8 * i));
    return KAGI_OK;
}

/* Make sure need more nonces are covered by the persisted bound (inside
 * the current transaction, or on its own outside one). */
static int kagi__reserve(kagi_store *s, uint64_t need)
{
    if (s->nonce_lim - s->nonce_ctr >= need) return KAGI_OK;
    uint64_t lim = s->nonce_ctr + (need > KAGI__NONCE_CHUNK ? need : KAGI__NONCE_CHUNK);
    sqlite3_stmt *st = s->st[S_META_SET];
    sqlite3_bind_text(st, 1, "nonce_hi", -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)lim);
    KAGI__TRY(kagi__exec(s, S_META_SET));
    s->nonce_lim = lim;
    return KAGI_OK;
}

static int kagi__seal(kagi_store *s, const uint8_t *aad, size_t aadlen, const uint8_t *pt,
                      size_t len, uint8_t nonce[KAGI__NONCE], uint8_t *ct)
{
    KAGI__TRY(kagi__nonce(s, nonce));
    int outl = 0, ok = EVP_EncryptInit_ex(s->enc, NULL, NULL, NULL, nonce) == 1 &&
                       EVP_EncryptUpdate(s->enc, NULL, &outl, aad, (int)aadlen) == 1 &&
                       EVP_EncryptUpdate(s->enc, ct, &outl, pt, (int)len) == 1 &&
                       EVP_EncryptFinal_ex(s->enc, ct + outl, &outl) == 1 &&
                       EVP_CIPHER_CTX_ctrl(s->enc, EVP_CTRL_GCM_GET_TAG, KAGI__TAG, ct + len) == 1;
    return ok ? KAGI_OK : kagi__err(KAGI_ERR_ARG, "key store: sealing failed");
}

/* KAGI_ERR_AUTH when the row does not authenticate. */
static int kagi__unseal(kagi_store *s, const uint8_t *aad, size_t aadlen, const uint8_t *nonce,
                        size_t nlen, const uint8_t *ct, size_t ctlen, uint8_t *pt)
{
    if (nlen != KAGI__NONCE || ctlen < KAGI__TAG)
        return kagi__err(KAGI_ERR_AUTH, "key store: row has a malformed nonce or ciphertext");
    size_t len = ctlen - KAGI__TAG;
    uint8_t tag[KAGI__TAG];
    memcpy(tag, ct + len, KAGI__TAG);
    int outl = 0, ok = EVP_DecryptInit_ex(s->dec, NULL, NULL, NULL, nonce) == 1 &&
                       EVP_DecryptUpdate(s->dec, NULL, &outl, aad, (int)aadlen) == 1 &&
                       EVP_DecryptUpdate(s->dec, pt, &outl, ct, (int)len) == 1 &&
                       EVP_CIPHER_CTX_ctrl(s->dec, EVP_CTRL_GCM_SET_TAG, KAGI__TAG, tag) == 1 &&
                       EVP_DecryptFinal_ex(s->dec, pt + outl, &outl) == 1;
    if (!ok) {
        kagi_wipe(pt, len);
        return kagi__err(KAGI_ERR_AUTH, "key store: row failed authentication");
    }
    return KAGI_OK;
}

/* Associated data of a pool unit: "U", link, block, offset. */
static size_t kagi__aad_unit(uint8_t *a, uint32_t link, uint64_t block, uint32_t off)
{
    a[0] = 'U';
    kagi__put_u32(a + 1, link);
    kagi__put_u64(a + 5, block);
    kagi__put_u32(a + 13, off);
    return 17;
}

/* Associated data of an issued key: "P", key_ID, link, master, slaves (each
 * string with its length). cap >= 1 + 16 + 4 + (1 + 64) * (1 + 16). */
#define KAGI__AAD_PEND_MAX (1 + KAGI_KEY_ID_BYTES + 4 + (1 + KAGI_SAE_ID_MAX) * (1 + KAGI_MAX_SLAVES) + 8)
static size_t kagi__aad_pend(uint8_t *a, const uint8_t *id, uint32_t link, const char *master,
                             const char *slaves)
{
    size_t n = 0;
    a[n++] = 'P';
    memcpy(a + n, id, KAGI_KEY_ID_BYTES);
    n += KAGI_KEY_ID_BYTES;
    kagi__put_u32(a + n, link);
    n += 4;
    size_t ml = strlen(master), sl = strlen(slaves);
    if (ml > KAGI_SAE_ID_MAX) ml = KAGI_SAE_ID_MAX;
    if (sl > (1 + KAGI_SAE_ID_MAX) * KAGI_MAX_SLAVES) sl = (1 + KAGI_SAE_ID_MAX) * KAGI_MAX_SLAVES;
    a[n++] = (uint8_t)ml;
    memcpy(a + n, master, ml);
    n += ml;
    kagi__put_u32(a + n, (uint32_t)sl);
    n += 4;
    memcpy(a + n, slaves, sl);
    return n + sl;
}

/* ---- UUIDs ---- */

void kagi_uuid_format(const uint8_t id[KAGI_KEY_ID_BYTES], char out[37])
{
    static const char hx[] = "0123456789abcdef";
    size_t o = 0;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10) out[o++] = '-';
        out[o++] = hx[id[i] >> 4];
        out[o++] = hx[id[i] & 15];
    }
    out[o] = '\0';
}

int kagi_uuid_parse(const char *s, size_t len, uint8_t id[KAGI_KEY_ID_BYTES])
{
    if (len != 36) return kagi__err(KAGI_ERR_FORMAT, "key_ID is not a UUID (36 characters)");
    size_t j = 0;
    for (size_t i = 0; i < 36;) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-') return kagi__err(KAGI_ERR_FORMAT, "key_ID is not a UUID (dash at %zu)", i);
            i++;
            continue;
        }
        int v[2];
        for (int k = 0; k < 2; k++) {
            char c = s[i + (size_t)k];
            v[k] = c >= '0' && c <= '9' ? c - '0'
                 : c >= 'a' && c <= 'f' ? c - 'a' + 10
                 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
            if (v[k] < 0) return kagi__err(KAGI_ERR_FORMAT, "key_ID is not a UUID (character %zu)", i + (size_t)k);
        }
        id[j++] = (uint8_t)(v[0] << 4 | v[1]);
        i += 2;
    }
    return KAGI_OK;
}

/* key_IDs: random version-4 UUIDs, drawn from the CSPRNG 4 KiB at a time
 * (committer thread only; a used ID's bytes are wiped from the pool). */
static int kagi__new_key_id(kagi_store *s, uint8_t id[KAGI_KEY_ID_BYTES])
{
    if (s->rnd_off + KAGI_KEY_ID_BYTES > sizeof s->rnd) {
        KAGI__TRY(kagi_random_bytes(s->rnd, sizeof s->rnd));
        s->rnd_off = 0;
    }
    memcpy(id, s->rnd + s->rnd_off, KAGI_KEY_ID_BYTES);
    kagi_wipe(s->rnd + s->rnd_off, KAGI_KEY_ID_BYTES);
    s->rnd_off += KAGI_KEY_ID_BYTES;
    id[6] = (uint8_t)((id[6] & 0x0f) | 0x40);
    id[8] = (uint8_t)((id[8] & 0x3f) | 0x80);
    return KAGI_OK;
}

/* ---- index undo log ---- */

static int kagi__idx_put(kagi_store *s, const uint8_t *id, int64_t val)
{
    if (s->n_undo == s->cap_undo) {
        size_t cap = s->cap_undo ? s->cap_undo * 2 : 256;
        kagi__undo *u = realloc(s->undo, cap * sizeof *u);
        if (!u) return kagi__err(KAGI_ERR_NOMEM, "key store: out of memory");
        s->undo = u;
        s->cap_undo = cap;
    }
    kagi__undo *u = &s->undo[s->n_undo];
    memcpy(u->id, id, KAGI_KEY_ID_BYTES);
    u->prev = kagi__idmap_get(&s->idx, id);
    if (val) KAGI__TRY(kagi__idmap_put(&s->idx, id, val));
    else kagi__idmap_del(&s->idx, id);
    s->n_undo++;
    return KAGI_OK;
}

static void kagi__idx_undo(kagi_store *s, size_t to)
{
    while (s->n_undo > to) {
        kagi__undo *u = &s->undo[--s->n_undo];
        if (u->prev) {
            if (kagi__idmap_put(&s->idx, u->id, u->prev)) abort(); /* slot existed: no growth */
        } else {
            kagi__idmap_del(&s->idx, u->id);
        }
    }
}

/* ---- operations (committer thread, inside the batch transaction) ---- */

static kagi_store_result kagi__fail(kagi_store_op *op, kagi_store_result r, const char *fmt, ...)
    KAGI__PRINTF(3, 4);
static kagi_store_result kagi__fail(kagi_store_op *op, kagi_store_result r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(op->msg, sizeof op->msg, fmt, ap);
    va_end(ap);
    return r;
}

static void kagi__front_drop(kagi_store *s, uint32_t link)
{
    if (s->front[link]) s->front[link]->n = s->front[link]->head = 0;
}

/* Delete the units taken from a link's front since the last flush. */
static int kagi__front_flush(kagi_store *s, uint32_t link)
{
    kagi__link *L = &s->links[link];
    if (!L->del_lo) return KAGI_OK;
    sqlite3_stmt *d = s->st[S_POOL_DEL_RANGE];
    sqlite3_bind_int64(d, 1, L->del_lo);
    sqlite3_bind_int64(d, 2, L->cur);
    KAGI__TRY(kagi__exec(s, S_POOL_DEL_RANGE));
    L->del_lo = 0;
    return KAGI_OK;
}

/* Read the next units after the cursor into the front cache. */
static int kagi__front_fill(kagi_store *s, uint32_t link)
{
    kagi__front *F = s->front[link];
    if (!F) {
        F = calloc(1, sizeof *F);
        if (F) F->buf = malloc(KAGI__FRONT * (s->o.unit_bytes + KAGI__TAG));
        if (!F || !F->buf) {
            free(F);
            return kagi__err(KAGI_ERR_NOMEM, "key store: out of memory");
        }
        s->front[link] = F;
    }
    size_t slot = s->o.unit_bytes + KAGI__TAG;
    int64_t lo = s->links[link].cur ? s->links[link].cur : (int64_t)kagi__link_lo(link);
    sqlite3_stmt *st = s->st[S_POOL_FRONT];
    sqlite3_bind_int64(st, 1, lo);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)kagi__link_lo(link + 1));
    sqlite3_bind_int64(st, 3, KAGI__FRONT);
    F->n = F->head = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW && F->n < KAGI__FRONT) {
        kagi__unit *x = &F->u[F->n];
        x->id = sqlite3_column_int64(st, 0);
        x->block = sqlite3_column_int64(st, 1);
        x->off = (uint32_t)sqlite3_column_int64(st, 2);
        x->nlen = (size_t)sqlite3_column_bytes(st, 3);
        if (x->nlen == KAGI__NONCE) memcpy(x->nonce, sqlite3_column_blob(st, 3), KAGI__NONCE);
        x->ctlen = (size_t)sqlite3_column_bytes(st, 4);
        x->ct = x->ctlen <= slot ? F->buf + F->n * slot : NULL;
        if (x->ct && x->ctlen) memcpy(x->ct, sqlite3_column_blob(st, 4), x->ctlen);
        F->n++;
    }
    sqlite3_reset(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        F->n = 0;
        return kagi__err(KAGI_ERR_IO, "key store read failed: %s", sqlite3_errmsg(s->db));
    }
    return KAGI_OK;
}

/* Keep only the tail of a pool unit: its bytes from offset off of block
 * (tail, len of them) replace the row id, sealed anew for that offset
 * (the associated data names the offset, so the old seal would no longer
 * open). */
static int kagi__reseal_tail(kagi_store *s, uint32_t link, int64_t id, int64_t block, uint32_t off,
                             const uint8_t *tail, size_t len)
{
    uint8_t nonce[KAGI__NONCE], ct[4096 + KAGI__TAG], aad[32];
    size_t al = kagi__aad_unit(aad, link, (uint64_t)block, off);
    int e = kagi__seal(s, aad, al, tail, len, nonce, ct);
    if (!e) {
        sqlite3_stmt *up = s->st[S_POOL_UPD];
        sqlite3_bind_int64(up, 1, id);
        sqlite3_bind_int64(up, 2, off);
        sqlite3_bind_blob(up, 3, nonce, KAGI__NONCE, SQLITE_STATIC);
        sqlite3_bind_blob(up, 4, ct, (int)(len + KAGI__TAG), SQLITE_STATIC);
        e = kagi__exec(s, S_POOL_UPD);
    }
    kagi_wipe(ct, len + KAGI__TAG);
    return e;
}

/* Take need bytes from the front of a link's pool into out. *bad is set to
 * the id of a unit that failed authentication (to be discarded). Whole
 * units taken are only marked (the link's cursor): kagi__front_flush
 * deletes them in the same transaction. */
static kagi_store_result kagi__take(kagi_store *s, kagi_store_op *op, uint32_t link, uint8_t *out,
                                    size_t need, int64_t *bad, int64_t *block, uint32_t *block_off)
{
    kagi__link *L = &s->links[link];
    kagi_store_result r = KAGI_STORE_DONE;
    uint8_t pt[4096 + KAGI__TAG];
    size_t have = 0, touched = 0; /* bytes of pt ever written: those are wiped */
    while (have < need) {
        kagi__front *F = s->front[link];
        if (!F || F->head == F->n) {
            if (kagi__front_fill(s, link)) {
                r = kagi__fail(op, KAGI_STORE_FAILED, "%s", kagi_errdetail());
                break;
            }
            F = s->front[link];
            if (F->n == 0) {
                r = kagi__fail(op, KAGI_STORE_NO_KEY, "no key available");
                break;
            }
        }
        kagi__unit *x = &F->u[F->head];
        size_t len = x->ctlen >= KAGI__TAG ? x->ctlen - KAGI__TAG : 0;
        uint8_t aad[32];
        size_t al = kagi__aad_unit(aad, link, (uint64_t)x->block, x->off);
        if (len <= 4096 && len > touched) touched = len;
        if (!x->ct || len > 4096 || kagi__unseal(s, aad, al, x->nonce, x->nlen, x->ct, x->ctlen, pt)) {
            *bad = x->id;
            kagi__log(KAGI__LOG_ERROR, "key store: pool unit of link %s block %lld offset %u "
                      "failed authentication; discarding it", L->name, (long long)x->block, x->off);
            r = kagi__fail(op, KAGI_STORE_FAILED, "key data failed an integrity check");
            break;
        }
        if (have == 0) {
            *block = x->block;
            *block_off = x->off;
        }
        size_t use = need - have < len ? need - have : len;
        memcpy(out + have, pt, use);
        have += use;
        if (use < len) {
            /* The last unit is split: its rest goes back, and the cached
               copy of that row is stale. */
            if (kagi__reseal_tail(s, link, x->id, x->block, x->off + (uint32_t)use, pt + use, len - use))
                r = kagi__fail(op, KAGI_STORE_FAILED, "%s", kagi_errdetail());
            kagi__front_drop(s, link);
            break;
        }
        F->head++;
        if (!L->del_lo) L->del_lo = x->id;
        L->cur = x->id;
    }
    kagi_wipe(pt, touched);
    return r;
}

static const char *kagi__uuid(const uint8_t id[KAGI_KEY_ID_BYTES], char out[37]);

/* Record op->number keys of op->size_bytes (bytes in material) for
 * op->master and op->slaves as pending rows, with fresh key_IDs (ids NULL)
 * or the given ones; fills op->keys. */
static kagi_store_result kagi__pend_put(kagi_store *s, kagi_store_op *op, uint32_t link,
                                        const uint8_t *material, const uint8_t (*ids)[KAGI_KEY_ID_BYTES])
{
    kagi_store_result r = KAGI_STORE_DONE;
    /* The slaves, comma-joined, and the bitmask of those still due. */
    char slaves[(1 + KAGI_SAE_ID_MAX) * KAGI_MAX_SLAVES + 1];
    size_t sl = 0;
    for (unsigned i = 0; i < op->n_slaves; i++) {
        size_t l = strlen(op->slaves[i]);
        if (i) slaves[sl++] = ',';
        memcpy(slaves + sl, op->slaves[i], l);
        sl += l;
    }
    slaves[sl] = '\0';
    int64_t now = (int64_t)time(NULL);
    uint8_t *ct = malloc(op->size_bytes + KAGI__TAG);
    if (!ct) return kagi__fail(op, KAGI_STORE_FAILED, "out of memory");
    for (unsigned k = 0; k < op->number && r == KAGI_STORE_DONE; k++) {
        kagi_store_key *key = &op->keys[k];
        key->off = (size_t)k * op->size_bytes;
        key->len = op->size_bytes;
        uint8_t aad[KAGI__AAD_PEND_MAX], nonce[KAGI__NONCE];
        int e = KAGI_OK;
        if (ids) {
            char uuid[37];
            memcpy(key->id, ids[k], KAGI_KEY_ID_BYTES);
            if (kagi__idmap_get(&s->idx, key->id)) {
                r = kagi__fail(op, KAGI_STORE_BAD_ID, "key_ID %s exists", kagi__uuid(key->id, uuid));
                break;
            }
        } else {
            e = kagi__new_key_id(s, key->id);
        }
        size_t al = kagi__aad_pend(aad, key->id, link, op->master, slaves);
        if (!e) e = kagi__seal(s, aad, al, material + key->off, key->len, nonce, ct);
        if (!e) {
            sqlite3_stmt *st = s->st[S_PEND_INS];
            sqlite3_bind_blob(st, 1, key->id, KAGI_KEY_ID_BYTES, SQLITE_STATIC);
            sqlite3_bind_int64(st, 2, link);
            sqlite3_bind_text(st, 3, op->master, -1, SQLITE_STATIC);
            sqlite3_bind_text(st, 4, slaves, (int)sl, SQLITE_STATIC);
            sqlite3_bind_int64(st, 5, (sqlite3_int64)((1u << op->n_slaves) - 1));
            sqlite3_bind_int64(st, 6, now);
            sqlite3_bind_blob(st, 7, nonce, KAGI__NONCE, SQLITE_STATIC);
            sqlite3_bind_blob(st, 8, ct, (int)(key->len + KAGI__TAG), SQLITE_STATIC);
            e = kagi__exec(s, S_PEND_INS);
        }
        if (!e) e = kagi__idx_put(s, key->id, sqlite3_last_insert_rowid(s->db));
        if (e) r = kagi__fail(op, KAGI_STORE_FAILED, "%s", kagi_errdetail());
        op->n_keys = k + 1;
    }
    kagi_wipe(ct, op->size_bytes + KAGI__TAG);
    free(ct);
    return r;
}

static kagi_store_result kagi__issue(kagi_store *s, kagi_store_op *op, int64_t *bad)
{
    uint32_t link = op->link;
    size_t need = (size_t)op->number * op->size_bytes;
    if (s->links[link].avail < need)
        return kagi__fail(op, KAGI_STORE_NO_KEY, "no key available");
    op->material = malloc(need);
    op->keys = calloc(op->number, sizeof *op->keys);
    if (!op->material || !op->keys) return kagi__fail(op, KAGI_STORE_FAILED, "out of memory");
    op->material_len = need;
    kagi_store_result r = KAGI_STORE_DONE;
    /* Key by key, so each knows where it starts in the link's stream. */
    for (unsigned k = 0; k < op->number && r == KAGI_STORE_DONE; k++)
        r = kagi__take(s, op, link, op->material + (size_t)k * op->size_bytes, op->size_bytes, bad,
                       &op->keys[k].block, &op->keys[k].block_off);
    if (r != KAGI_STORE_DONE) return r;
    /* Units are taken now (a split one already resealed): a failure from
       here on poisons the batch when this operation runs without a
       savepoint (kagi__run_op). */
    if (op->number == 1) s->poison_on_fail = 1;
    if (op->n_slaves == 0) { /* for a peer: nothing kept here */
        for (unsigned k = 0; k < op->number; k++) {
            op->keys[k].off = (size_t)k * op->size_bytes;
            op->keys[k].len = op->size_bytes;
            if (kagi__new_key_id(s, op->keys[k].id)) r = kagi__fail(op, KAGI_STORE_FAILED, "%s", kagi_errdetail());
        }
        op->n_keys = op->number;
    } else {
        r = kagi__pend_put(s, op, link, op->material, NULL);
    }
    if (r == KAGI_STORE_DONE) s->links[link].avail -= need;
    else if (s->poison_on_fail) s->poison = 1;
    s->poison_on_fail = 0;
    return r;
}

static const char *kagi__uuid(const uint8_t id[KAGI_KEY_ID_BYTES], char out[37])
{
    kagi_uuid_format(id, out);
    return out;
}

static int kagi__named(const char *list, const char *who, unsigned *bit)
{
    size_t wl = strlen(who);
    unsigned i = 0;
    for (const char *p = list;; i++) {
        const char *c = strchr(p, ',');
        size_t l = c ? (size_t)(c - p) : strlen(p);
        if (l == wl && !memcmp(p, who, wl)) {
            *bit = 1u << i;
            return 1;
        }
        if (!c) return 0;
        p = c + 1;
    }
}

static kagi_store_result kagi__fetch(kagi_store *s, kagi_store_op *op)
{
    op->keys = calloc(op->n_ids ? op->n_ids : 1, sizeof *op->keys);
    if (!op->keys) return kagi__fail(op, KAGI_STORE_FAILED, "out of memory");
    size_t cap = 0;
    for (unsigned i = 0; i < op->n_ids; i++) {
        const uint8_t *id = op->ids[i];
        char uuid[37]; /* formatted only for a message: most fetches need none */
        int64_t row = kagi__idmap_get(&s->idx, id);
        if (!row) return kagi__fail(op, KAGI_STORE_BAD_ID, "key_ID %s not found", kagi__uuid(id, uuid));
        sqlite3_stmt *st = s->st[S_PEND_SEL];
        sqlite3_bind_int64(st, 1, row);
        int rc = sqlite3_step(st);
        if (rc != SQLITE_ROW) {
            sqlite3_reset(st);
            if (rc == SQLITE_DONE)
                return kagi__fail(op, KAGI_STORE_BAD_ID, "key_ID %s not found", kagi__uuid(id, uuid));
            return kagi__fail(op, KAGI_STORE_FAILED, "key store read failed: %s", sqlite3_errmsg(s->db));
        }
        const char *master = (const char *)sqlite3_column_text(st, 2);
        const char *slaves = (const char *)sqlite3_column_text(st, 3);
        unsigned bit = 0;
        uint32_t link = (uint32_t)sqlite3_column_int64(st, 1);
        unsigned remaining = (unsigned)sqlite3_column_int64(st, 4);
        if (sqlite3_column_bytes(st, 0) != KAGI_KEY_ID_BYTES ||
            memcmp(sqlite3_column_blob(st, 0), id, KAGI_KEY_ID_BYTES) || !master || !slaves) {
            sqlite3_reset(st);
            kagi__log(KAGI__LOG_ERROR, "key store: index and table disagree on key_ID %s",
                      kagi__uuid(id, uuid));
            return kagi__fail(op, KAGI_STORE_FAILED, "key store inconsistency");
        }
        if (strcmp(master, op->master) != 0 || !kagi__named(slaves, op->caller, &bit)) {
            sqlite3_reset(st);
            return kagi__fail(op, KAGI_STORE_NOT_NAMED, "key_ID %s was not issued by %s to %s",
                              kagi__uuid(id, uuid), op->master, op->caller);
        }
        if (!(remaining & bit)) {
            sqlite3_reset(st);
            return kagi__fail(op, KAGI_STORE_BAD_ID, "key_ID %s was already delivered to %s",
                              kagi__uuid(id, uuid), op->caller);
        }
        size_t ctlen = (size_t)sqlite3_column_bytes(st, 6);
        size_t len = ctlen >= KAGI__TAG ? ctlen - KAGI__TAG : 0;
        if (op->material_len + len > cap) {
            size_t ncap = (op->material_len + len) * 2;
            uint8_t *m = malloc(ncap ? ncap : 1);
            if (!m) {
                sqlite3_reset(st);
                return kagi__fail(op, KAGI_STORE_FAILED, "out of memory");
            }
            if (op->material) {
                memcpy(m, op->material, op->material_len);
                kagi_wipe(op->material, op->material_len);
                free(op->material);
            }
            op->material = m;
            cap = ncap;
        }
        uint8_t aad[KAGI__AAD_PEND_MAX];
        size_t al = kagi__aad_pend(aad, id, link, master, slaves);
        int e = len > KAGI__MAX_KEY_BYTES
                    ? KAGI_ERR_AUTH
                    : kagi__unseal(s, aad, al, sqlite3_column_blob(st, 5),
                                   (size_t)sqlite3_column_bytes(st, 5), sqlite3_column_blob(st, 6),
                                   ctlen, op->material + op->material_len);
        sqlite3_reset(st);
        if (e) {
            kagi__log(KAGI__LOG_ERROR, "key store: issued key_ID %s failed authentication",
                      kagi__uuid(id, uuid));
            return kagi__fail(op, KAGI_STORE_FAILED, "key data failed an integrity check");
        }
        kagi_store_key *k = &op->keys[op->n_keys++];
        memcpy(k->id, id, KAGI_KEY_ID_BYTES);
        k->off = op->material_len;
        k->len = len;
        op->material_len += len;
        remaining &= ~bit;
        if (remaining) {
            sqlite3_stmt *up = s->st[S_PEND_UPD];
            sqlite3_bind_int64(up, 1, row);
            sqlite3_bind_int64(up, 2, remaining);
            e = kagi__exec(s, S_PEND_UPD);
        } else {
            sqlite3_stmt *d = s->st[S_PEND_DEL];
            sqlite3_bind_int64(d, 1, row);
            e = kagi__exec(s, S_PEND_DEL);
            if (!e) e = kagi__idx_put(s, id, 0);
        }
        if (e) return kagi__fail(op, KAGI_STORE_FAILED, "%s", kagi_errdetail());
    }
    return KAGI_STORE_DONE;
}

/* Seal len bytes of block block_id into link's pool as units, and move
 * the link's last block and sequence on. */
static kagi_store_result kagi__add_units(kagi_store *s, kagi_store_op *op, uint32_t link,
                                         const uint8_t *bytes, size_t blen)
{
    kagi__link *L = &s->links[link];
    uint8_t ct[4096 + KAGI__TAG], nonce[KAGI__NONCE], aad[32];
    size_t unit = s->o.unit_bytes;
    kagi_store_result r = KAGI_STORE_DONE;
    int64_t seq = L->next_seq;
    for (size_t off = 0; off < blen; off += unit) {
        size_t len = blen - off < unit ? blen - off : unit;
        size_t al = kagi__aad_unit(aad, link, op->block_id, (uint32_t)off);
        int e = kagi__seal(s, aad, al, bytes + off, len, nonce, ct);
        if (!e) {
            sqlite3_stmt *st = s->st[S_POOL_INS];
            sqlite3_bind_int64(st, 1, (sqlite3_int64)(kagi__link_lo(link) | (uint64_t)seq++));
            sqlite3_bind_int64(st, 2, (sqlite3_int64)op->block_id);
            sqlite3_bind_int64(st, 3, (sqlite3_int64)off);
            sqlite3_bind_blob(st, 4, nonce, KAGI__NONCE, SQLITE_STATIC);
            sqlite3_bind_blob(st, 5, ct, (int)(len + KAGI__TAG), SQLITE_STATIC);
            e = kagi__exec(s, S_POOL_INS);
        }
        if (e) {
            r = kagi__fail(op, KAGI_STORE_FAILED, "%s", kagi_errdetail());
            break;
        }
    }
    kagi_wipe(ct, sizeof ct);
    if (r != KAGI_STORE_DONE) return r;
    sqlite3_stmt *st = s->st[S_LINK_UPD];
    sqlite3_bind_int64(st, 1, link);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)op->block_id);
    sqlite3_bind_int64(st, 3, seq);
    if (kagi__exec(s, S_LINK_UPD)) return kagi__fail(op, KAGI_STORE_FAILED, "%s", kagi_errdetail());
    L->next_seq = seq;
    L->last_block = (int64_t)op->block_id;
    L->avail += blen;
    return KAGI_STORE_DONE;
}

static kagi_store_result kagi__add_block(kagi_store *s, kagi_store_op *op)
{
    kagi__link *L = &s->links[op->link];
    if (op->block_id > (uint64_t)INT64_MAX || (int64_t)op->block_id <= L->last_block)
        return kagi__fail(op, KAGI_STORE_BAD_ID, "block %llu of link %s is not above the last "
                          "stored block %lld", (unsigned long long)op->block_id, L->name,
                          (long long)L->last_block);
    if (!L->split) return kagi__add_units(s, op, op->link, op->block, op->block_len);
    size_t half = op->block_len / 2;
    if (!half) return kagi__fail(op, KAGI_STORE_BAD_ID, "block %llu of link %s has one byte: it cannot be "
                                 "split between the link's two directions", (unsigned long long)op->block_id, L->name);
    kagi_store_result r = kagi__add_units(s, op, op->link, op->block, half);
    if (r == KAGI_STORE_DONE) r = kagi__add_units(s, op, L->split, op->block + half, op->block_len - half);
    return r;
}

/* Drop the units of a link's pool that lie before (block, off), splitting
 * one that straddles it. KAGI_STORE_BAD_ID when the pool's front is past
 * the position (those bytes were used or dropped before: a replay);
 * KAGI_STORE_NO_KEY when the pool ends before it (the block is not stored
 * here yet). */
static kagi_store_result kagi__skip_to(kagi_store *s, kagi_store_op *op, uint32_t link, int64_t block,
                                       uint32_t off, int64_t *bad)
{
    uint8_t pt[4096 + KAGI__TAG];
    kagi_store_result r = KAGI_STORE_DONE;
    /* It reads and changes the front in SQL: taken units must be gone
       first, and the cache is stale after. */
    if (kagi__front_flush(s, link)) return kagi__fail(op, KAGI_STORE_FAILED, "%s", kagi_errdetail());
    kagi__front_drop(s, link);
    for (;;) {
        sqlite3_stmt *st = s->st[S_POOL_SEL];
        sqlite3_bind_int64(st, 1, (sqlite3_int64)kagi__link_lo(link));
        sqlite3_bind_int64(st, 2, (sqlite3_int64)kagi__link_lo(link + 1));
        int rc = sqlite3_step(st);
        if (rc != SQLITE_ROW) {
            sqlite3_reset(st);
            r = rc == SQLITE_DONE ? kagi__fail(op, KAGI_STORE_NO_KEY, "block %lld of link %s is not stored here yet",
                                               (long long)block, s->links[link].name)
                                  : kagi__fail(op, KAGI_STORE_FAILED, "key store read failed: %s", sqlite3_errmsg(s->db));
            break;
        }
        int64_t id = sqlite3_column_int64(st, 0), ub = sqlite3_column_int64(st, 1);
        uint32_t uo = (uint32_t)sqlite3_column_int64(st, 2);
        size_t nlen = (size_t)sqlite3_column_bytes(st, 3), ctlen = (size_t)sqlite3_column_bytes(st, 4);
        size_t len = ctlen >= KAGI__TAG ? ctlen - KAGI__TAG : 0;
        if (ub > block || (ub == block && uo > off)) {
            sqlite3_reset(st);
            op->front_block = ub;
            op->front_off = uo;
            r = kagi__fail(op, KAGI_STORE_BAD_ID, "position %lld:%u of link %s was used or dropped before",
                           (long long)block, off, s->links[link].name);
            break;
        }
        if (ub == block && uo == off) {
            sqlite3_reset(st);
            break; /* at the position */
        }
        if (ub < block || (uint64_t)uo + len <= off) { /* wholly before: drop */
            sqlite3_reset(st);
            sqlite3_stmt *d = s->st[S_POOL_DEL];
            sqlite3_bind_int64(d, 1, id);
            if (kagi__exec(s, S_POOL_DEL)) {
                r = kagi__fail(op, KAGI_STORE_FAILED, "%s", kagi_errdetail());
                break;
            }
            s->links[link].avail -= len < s->links[link].avail ? len : s->links[link].avail;
            continue;
        }
        /* straddles: keep the part from off on, resealed at off */
        uint8_t aad[32];
        size_t al = kagi__aad_unit(aad, link, (uint64_t)ub, uo);
        int e = len > 4096 || nlen != KAGI__NONCE ||
                kagi__unseal(s, aad, al, sqlite3_column_blob(st, 3), nlen, sqlite3_column_blob(st, 4), ctlen, pt);
        sqlite3_reset(st);
        if (e) {
            *bad = id;
            r = kagi__fail(op, KAGI_STORE_FAILED, "key data failed an integrity check");
            break;
        }
        size_t cut = off - uo;
        if (kagi__reseal_tail(s, link, id, ub, off, pt + cut, len - cut)) r = kagi__fail(op, KAGI_STORE_FAILED, "%s", kagi_errdetail());
        else s->links[link].avail -= cut < s->links[link].avail ? cut : s->links[link].avail;
        break;
    }
    kagi_wipe(pt, sizeof pt);
    return r;
}

static kagi_store_result kagi__take_at(kagi_store *s, kagi_store_op *op, int64_t *bad)
{
    uint32_t link = op->link;
    if (op->size_bytes == 0) {
        /* catch up: drop what lies before the last position, if anything */
        const kagi_store_key *to = &op->at[op->number - 1];
        kagi_store_result r = kagi__skip_to(s, op, link, to->block, to->block_off, bad);
        if (r == KAGI_STORE_BAD_ID || r == KAGI_STORE_NO_KEY) {
            op->msg[0] = '\0';
            r = KAGI_STORE_DONE;
        }
        return r;
    }
    size_t need = (size_t)op->number * op->size_bytes;
    op->material = malloc(need);
    op->keys = calloc(op->number, sizeof *op->keys);
    if (!op->material || !op->keys) return kagi__fail(op, KAGI_STORE_FAILED, "out of memory");
    op->material_len = need;
    kagi_store_result r = KAGI_STORE_DONE;
    for (unsigned k = 0; k < op->number && r == KAGI_STORE_DONE; k++) {
        kagi_store_key *key = &op->keys[k];
        r = kagi__skip_to(s, op, link, op->at[k].block, op->at[k].block_off, bad);
        if (r == KAGI_STORE_DONE && s->links[link].avail < op->size_bytes)
            r = kagi__fail(op, KAGI_STORE_NO_KEY, "the key at %lld:%u of link %s is not all stored here yet",
                           (long long)op->at[k].block, op->at[k].block_off, s->links[link].name);
        if (r == KAGI_STORE_DONE)
            r = kagi__take(s, op, link, op->material + (size_t)k * op->size_bytes, op->size_bytes, bad,
                           &key->block, &key->block_off);
        if (r != KAGI_STORE_DONE) break;
        s->links[link].avail -= op->size_bytes;
        key->off = (size_t)k * op->size_bytes;
        key->len = op->size_bytes;
        op->n_keys = k + 1;
    }
    return r;
}

static kagi_store_result kagi__put(kagi_store *s, kagi_store_op *op)
{
    op->keys = calloc(op->number, sizeof *op->keys);
    if (!op->keys) return kagi__fail(op, KAGI_STORE_FAILED, "out of memory");
    return kagi__pend_put(s, op, op->link, op->put, op->ids);
}

static kagi_store_result kagi__link_op(kagi_store *s, kagi_store_op *op)
{
    const char *name = op->caller;
    for (uint32_t i = 1; i <= s->n_links; i++)
        if (!strcmp(s->links[i].name, name)) {
            op->link = i;
            return KAGI_STORE_DONE;
        }
    if (s->n_links == KAGI__MAX_LINKS) return kagi__fail(op, KAGI_STORE_FAILED, "too many links");
    sqlite3_stmt *st = s->st[S_LINK_INS];
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    if (kagi__exec(s, S_LINK_INS)) return kagi__fail(op, KAGI_STORE_FAILED, "%s", kagi_errdetail());
    st = s->st[S_LINK_SEL];
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_ROW) {
        sqlite3_reset(st);
        return kagi__fail(op, KAGI_STORE_FAILED, "link %s: %s", name, sqlite3_errmsg(s->db));
    }
    int64_t id = sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    if (id < 1 || id > KAGI__MAX_LINKS) return kagi__fail(op, KAGI_STORE_FAILED, "link id %lld out of range", (long long)id);
    kagi__link *L = &s->links[id];
    snprintf(L->name, sizeof L->name, "%s", name);
    L->avail = 0;
    L->last_block = -1;
    L->next_seq = 1;
    if ((uint32_t)id > s->n_links) s->n_links = (uint32_t)id;
    op->link = (uint32_t)id;
    return KAGI_STORE_DONE;
}

static kagi_store_result kagi__split_op(kagi_store *s, kagi_store_op *op)
{
    uint32_t second = (uint32_t)op->block_id;
    if (second < 1 || second > s->n_links || second == op->link)
        return kagi__fail(op, KAGI_STORE_FAILED, "split: bad second link %u", second);
    s->links[op->link].split = second;
    return KAGI_STORE_DONE;
}

/* Drop issued keys older than the TTL (the oldest first, a bounded number
 * per batch). */
static void kagi__gc(kagi_store *s)
{
    int64_t cutoff = (int64_t)time(NULL) - (int64_t)s->o.pending_ttl_s;
    sqlite3_stmt *st = s->st[S_GC_SEL];
    int64_t ids[256];
    uint8_t kid[256][KAGI_KEY_ID_BYTES];
    size_t n = 0;
    while (n < 256 && sqlite3_step(st) == SQLITE_ROW) {
        if (sqlite3_column_int64(st, 2) >= cutoff) break;
        ids[n] = sqlite3_column_int64(st, 0);
        if (sqlite3_column_bytes(st, 1) == KAGI_KEY_ID_BYTES)
            memcpy(kid[n], sqlite3_column_blob(st, 1), KAGI_KEY_ID_BYTES);
        else
            memset(kid[n], 0, KAGI_KEY_ID_BYTES);
        n++;
    }
    sqlite3_reset(st);
    for (size_t i = 0; i < n; i++) {
        sqlite3_stmt *d = s->st[S_PEND_DEL];
        sqlite3_bind_int64(d, 1, ids[i]);
        if (kagi__exec(s, S_PEND_DEL) || kagi__idx_put(s, kid[i], 0)) return;
        char uuid[37];
        kagi_uuid_format(kid[i], uuid);
        kagi__log(KAGI__LOG_INFO, "expired key_ID=%s (no slave fetched it within %u s)", uuid,
                  s->o.pending_ttl_s);
    }
}

static uint64_t kagi__nonces_needed(const kagi_store *s, const kagi_store_op *op)
{
    switch ((int)op->kind) {
    case KAGI_STORE_ISSUE: return (uint64_t)op->number + 1;
    case KAGI_STORE_ADD_BLOCK: return op->block_len / s->o.unit_bytes + 2;
    case KAGI_STORE_TAKE_AT: return 2 * (uint64_t)op->number + 1;
    case KAGI_STORE_PUT: return (uint64_t)op->number + 1;
    default: return 0;
    }
}

static void kagi__run_op(kagi_store *s, kagi_store_op *op)
{
    kagi__link saved = {0};
    int has_link = (op->kind == KAGI_STORE_ISSUE || op->kind == KAGI_STORE_ADD_BLOCK ||
                    op->kind == KAGI_STORE_TAKE_AT);
    kagi__link saved2 = {0};
    uint32_t second = op->kind == KAGI_STORE_ADD_BLOCK ? s->links[op->link].split : 0;
    if (has_link) saved = s->links[op->link];
    if (second) saved2 = s->links[second];
    size_t undo_mark = s->n_undo;
    int64_t bad = 0;
    op->msg[0] = '\0';
    /* A savepoint per operation, so one failing leaves the others. A
       one-key ISSUE needs none: it fails either before writing anything
       (no key, a unit failing authentication) or in a write, which
       poisons the whole batch. */
    int sp = !(op->kind == KAGI_STORE_ISSUE && op->number == 1);
    if (sp && kagi__exec(s, S_SP)) {
        op->result = kagi__fail(op, KAGI_STORE_FAILED, "%s", kagi_errdetail());
        return;
    }
    switch ((int)op->kind) {
    case KAGI_STORE_ISSUE: op->result = kagi__issue(s, op, &bad); break;
    case KAGI_STORE_FETCH: op->result = kagi__fetch(s, op); break;
    case KAGI_STORE_ADD_BLOCK: op->result = kagi__add_block(s, op); break;
    case KAGI_STORE_TAKE_AT: op->result = kagi__take_at(s, op, &bad); break;
    case KAGI_STORE_PUT: op->result = kagi__put(s, op); break;
    case KAGI__STORE_LINK: op->result = kagi__link_op(s, op); break;
    case KAGI__STORE_SPLIT: op->result = kagi__split_op(s, op); break;
    default: op->result = kagi__fail(op, KAGI_STORE_FAILED, "unknown operation");
    }
    if (op->result != KAGI_STORE_DONE) {
        if (sp) (void)kagi__exec(s, S_RBTO);
        if (has_link) s->links[op->link] = saved;
        if (second) s->links[second] = saved2;
        /* the cursor is back where it was; the cache may hold rows read past it */
        if (has_link) kagi__front_drop(s, op->link);
        kagi__idx_undo(s, undo_mark);
        kagi_store_op_clear(op);
    }
    if (sp) (void)kagi__exec(s, S_REL);
    if (bad) {
        /* A unit that fails authentication can never be delivered: drop it
           so the pool behind it stays usable. */
        kagi__front_drop(s, op->link);
        sqlite3_stmt *st = s->st[S_POOL_SEL];
        sqlite3_bind_int64(st, 1, bad - 1);
        sqlite3_bind_int64(st, 2, bad + 1);
        if (sqlite3_step(st) == SQLITE_ROW) {
            int len = sqlite3_column_bytes(st, 4) - KAGI__TAG;
            sqlite3_reset(st);
            sqlite3_stmt *d = s->st[S_POOL_DEL];
            sqlite3_bind_int64(d, 1, bad);
            if (!kagi__exec(s, S_POOL_DEL) && len > 0 && s->links[op->link].avail >= (uint64_t)len)
                s->links[op->link].avail -= (uint64_t)len;
        } else {
            sqlite3_reset(st);
        }
    }
}

static void kagi__publish(kagi_store *s)
{
    for (uint32_t i = 1; i <= s->n_links; i++) {
        atomic_store(&s->pub_pool[i], s->links[i].avail);
        atomic_store(&s->pub_last[i], s->links[i].last_block);
    }
    atomic_store(&s->pub_pending, (uint64_t)s->idx.n);
}

/* Run a batch in one transaction. Returns 1 when it committed (and so
 * must be synced before its operations complete), 0 when it failed. */
static int kagi__batch(kagi_store *s, kagi_store_op *ops, unsigned n, int gc)
{
    kagi__link saved[KAGI__MAX_LINKS + 1];
    uint32_t saved_n = s->n_links;
    memcpy(saved, s->links, sizeof saved);
    uint64_t saved_lim = s->nonce_lim;
    s->n_undo = 0;
    uint64_t need = 0;
    for (kagi_store_op *op = ops; op; op = op->next) need += kagi__nonces_needed(s, op);
    int e = kagi__exec(s, S_BEGIN);
    if (!e) e = kagi__reserve(s, need);
    s->poison = 0;
    if (!e) {
        for (kagi_store_op *op = ops; op; op = op->next) kagi__run_op(s, op);
        if (gc) kagi__gc(s);
        for (uint32_t i = 1; i <= s->n_links && !e && !s->poison; i++) e = kagi__front_flush(s, i);
        if (!e) e = s->poison ? kagi__err(KAGI_ERR_IO, "key store: a write failed in the batch") : kagi__exec(s, S_COMMIT);
    }
    if (e) {
        char why[256];
        snprintf(why, sizeof why, "%s", kagi_errdetail());
        kagi__log(KAGI__LOG_ERROR, "key store: batch of %u operations failed: %s", n, why);
        if (!sqlite3_get_autocommit(s->db)) (void)kagi__exec(s, S_ROLLBACK);
        memcpy(s->links, saved, sizeof saved);
        s->n_links = saved_n;
        for (uint32_t i = 1; i <= KAGI__MAX_LINKS; i++) kagi__front_drop(s, i);
        s->nonce_lim = saved_lim;
        kagi__idx_undo(s, 0);
        for (kagi_store_op *op = ops; op; op = op->next) {
            kagi_store_op_clear(op);
            op->result = kagi__fail(op, KAGI_STORE_FAILED, "key store error");
        }
    }
    s->n_undo = 0;
    kagi__publish(s);
    atomic_fetch_add(&s->st_commits, 1);
    atomic_fetch_add(&s->st_ops, n);
    if (n > atomic_load(&s->st_max_batch)) atomic_store(&s->st_max_batch, n);
    return e == KAGI_OK;
}

static void kagi__complete(kagi_store_op *ops)
{
    while (ops) {
        kagi_store_op *next = ops->next;
        ops->next = NULL;
        ops->done(ops);
        ops = next;
    }
}

/* The durability barrier: one fdatasync of the WAL covers every batch
 * committed before it; only then do their operations complete (and their
 * keys go out). The committer connection runs with synchronous=OFF and
 * never checkpoints; the checkpointer's connection (synchronous=FULL)
 * syncs the WAL before copying it into the database. */
static void *kagi__syncer(void *arg)
{
    kagi_store *s = arg;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (!s->sy_head && !s->sy_closing) pthread_cond_wait(&s->sycv, &s->mu);
        if (!s->sy_head) break;
        kagi_store_op *ops = s->sy_head;
        s->sy_head = s->sy_tail = NULL;
        pthread_cond_signal(&s->cv); /* the committer may run its next batch */
        pthread_mutex_unlock(&s->mu);
        double t0 = kagi__now();
        int xrc = fdatasync(s->walfd);
        double dt = kagi__now() - t0;
        atomic_fetch_add(&s->st_fsyncs, 1);
        atomic_fetch_add(&s->st_fsync_us, (uint64_t)(dt * 1e6));
        if ((uint64_t)(dt * 1e6) > atomic_load(&s->st_fsync_max_us)) atomic_store(&s->st_fsync_max_us, (uint64_t)(dt * 1e6));
        if (xrc != 0) {
            /* Committed but maybe not durable: never hand such keys out. */
            kagi__log(KAGI__LOG_ERROR, "key store: fdatasync of the WAL failed: %s", strerror(errno));
            for (kagi_store_op *op = ops; op; op = op->next) {
                kagi_store_op_clear(op);
                op->result = KAGI_STORE_FAILED;
                snprintf(op->msg, sizeof op->msg, "key store error");
            }
        }
        kagi__complete(ops);
        pthread_mutex_lock(&s->mu);
        s->fsync_avg += (dt - s->fsync_avg) / 16;
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

double kagi__commit_gap(unsigned interval_us, int pace, double fsync_avg)
{
    double gap = interval_us * 1e-6;
    double p = pace ? 2 * fsync_avg : 0;
    if (p > KAGI__PACE_MAX) p = KAGI__PACE_MAX;
    return p > gap ? p : gap;
}

static void kagi__abs_time(struct timespec *ts, double t)
{
    /* t on the monotonic clock; the condition variable uses it too. */
    ts->tv_sec = (time_t)t;
    ts->tv_nsec = (long)((t - (double)ts->tv_sec) * 1e9);
}

static void *kagi__committer(void *arg)
{
    kagi_store *s = arg;
    double last = 0;
    unsigned last_n = 0;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (s->ck_pause && !s->closing) {
            s->ck_paused = 1;
            pthread_cond_broadcast(&s->ckcv);
            pthread_cond_wait(&s->cv, &s->mu);
        }
        s->ck_paused = 0;
        while (!s->head && !s->closing && !s->ck_pause) {
            if (s->o.pending_ttl_s) {
                if (kagi__now() >= s->next_gc) break;
                struct timespec ts;
                kagi__abs_time(&ts, s->next_gc);
                pthread_cond_timedwait(&s->cv, &s->mu, &ts);
            } else {
                pthread_cond_wait(&s->cv, &s->mu);
            }
        }
        if (!s->head && s->closing) break;
        if (s->ck_pause && !s->closing) continue;
        /* Pipeline depth two: one batch being synced, one being built. A
           batch committed but not yet taken by the syncer holds the next
           one back, so batches grow with the fsync time instead of
           shrinking into many small commits. */
        while (s->sy_head && !s->closing) pthread_cond_wait(&s->cv, &s->mu);
        /* pacing holds a batch back only when others are in flight (the
           last batch held several): a lone client is never kept waiting */
        double gap = kagi__commit_gap(s->o.commit_interval_us, s->o.pace_fsyncs && last_n > 1, s->fsync_avg);
        if (gap > 0 && s->head) {
            double until = last + gap;
            while (!s->closing && s->qlen < s->o.max_batch && kagi__now() < until) {
                struct timespec ts;
                kagi__abs_time(&ts, until);
                pthread_cond_timedwait(&s->cv, &s->mu, &ts);
            }
        }
        kagi_store_op *ops = s->head, *tail = ops;
        unsigned n = ops ? 1 : 0;
        while (tail && tail->next && n < s->o.max_batch) {
            tail = tail->next;
            n++;
        }
        if (tail) {
            s->head = tail->next;
            tail->next = NULL;
            if (!s->head) s->tail = NULL;
        }
        s->qlen -= n;
        pthread_mutex_unlock(&s->mu);
        last = kagi__now();
        last_n = n;
        int gc = 0;
        if (s->o.pending_ttl_s && last >= s->next_gc) {
            gc = 1;
            s->next_gc = last + 1.0;
        }
        int durable = kagi__batch(s, ops, n, gc);
        pthread_mutex_lock(&s->mu);
        if (ops && durable && s->sy_started) {
            /* committed, not yet on disk: the syncer completes them */
            if (s->sy_tail) s->sy_tail->next = ops;
            else s->sy_head = ops;
            while (ops->next) ops = ops->next;
            s->sy_tail = ops;
            pthread_cond_signal(&s->sycv);
        } else {
            pthread_mutex_unlock(&s->mu);
            kagi__complete(ops);
            pthread_mutex_lock(&s->mu);
        }
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* Every second a PASSIVE checkpoint (never blocks the committer; rare, as
 * its fsync of the database delays the WAL fsyncs behind it); when the
 * WAL passes KAGI__WAL_RESTART frames a RESTART, which waits
 * for the committer's current transaction and lets the WAL start over. */
/* The checkpointer's busy handler: short sleeps (SQLite's default grows
 * them to 100 ms, and every wait of a WAL restart holds the committer). */
static int kagi__ck_busy(void *arg, int n)
{
    (void)arg;
    if (n >= 20000) return 0; /* 2 s */
    struct timespec ts = {0, 100000};
    nanosleep(&ts, NULL);
    return 1;
}

static void *kagi__checkpointer(void *arg)
{
    kagi_store *s = arg;
    pthread_mutex_lock(&s->mu);
    while (!s->closing) {
        struct timespec ts;
        kagi__abs_time(&ts, kagi__now() + 1.0);
        pthread_cond_timedwait(&s->ckcv, &s->mu, &ts);
        if (s->closing) break;
        pthread_mutex_unlock(&s->mu);
        int frames = 0, done = 0;
        int rc = sqlite3_wal_checkpoint_v2(s->ckdb, NULL, SQLITE_CHECKPOINT_PASSIVE, &frames, &done);
        /* before a restart, catch up until what is left to copy under the
           pause is small: the pause then holds the committer briefly */
        for (int k = 0; rc == SQLITE_OK && frames > KAGI__WAL_RESTART && frames - done > 256 && k < 4; k++)
            rc = sqlite3_wal_checkpoint_v2(s->ckdb, NULL, SQLITE_CHECKPOINT_PASSIVE, &frames, &done);
        if (rc == SQLITE_OK && frames > KAGI__WAL_RESTART) {
            /* Under steady load the committer always holds or is about to
               take the write lock, so a restart never finds a gap and the
               WAL grows without end (and every fdatasync then also commits
               the file's new size). Pause the committer between two
               batches for the restart: it copies only what came since the
               passive checkpoint above, then syncs the database, a few ms
               once per KAGI__WAL_RESTART frames. */
            double tp0 = kagi__now();
            pthread_mutex_lock(&s->mu);
            s->ck_pause = 1;
            pthread_cond_broadcast(&s->cv);
            while (!s->ck_paused && !s->closing) pthread_cond_wait(&s->ckcv, &s->mu);
            pthread_mutex_unlock(&s->mu);
            rc = sqlite3_wal_checkpoint_v2(s->ckdb, NULL, SQLITE_CHECKPOINT_RESTART, &frames, &done);
            kagi__log(KAGI__LOG_DEBUG, "key store: WAL restarted after %d frames, the committer paused %.1f ms (%s)",
                      frames, (kagi__now() - tp0) * 1e3, rc == SQLITE_OK ? "ok" : sqlite3_errmsg(s->ckdb));
            pthread_mutex_lock(&s->mu);
            s->ck_pause = 0;
            pthread_cond_broadcast(&s->cv);
            pthread_mutex_unlock(&s->mu);
        }
        if (rc != SQLITE_OK && rc != SQLITE_BUSY)
            kagi__log(KAGI__LOG_WARN, "key store: checkpoint: %s", sqlite3_errmsg(s->ckdb));
        pthread_mutex_lock(&s->mu);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* ---- public API ---- */

int kagi_store_submit(kagi_store *s, kagi_store_op *op)
{
    switch ((int)op->kind) {
    case KAGI_STORE_ISSUE:
    case KAGI_STORE_PUT:
        KAGI__FAIL_IF(op->kind == KAGI_STORE_PUT && (!op->put || !op->ids || !op->n_slaves), KAGI_ERR_ARG,
                      "key store: malformed put request");
        KAGI__FAIL_IF(!op->master || op->n_slaves > KAGI_MAX_SLAVES || !op->number ||
                          !op->size_bytes || op->size_bytes > KAGI__MAX_KEY_BYTES ||
                          op->number > 1u << 16,
                      KAGI_ERR_ARG, "key store: malformed issue request");
        for (unsigned i = 0; i < op->n_slaves; i++)
            KAGI__FAIL_IF(!op->slaves[i] || strchr(op->slaves[i], ',') ||
                              strlen(op->slaves[i]) > KAGI_SAE_ID_MAX,
                          KAGI_ERR_ARG, "key store: malformed slave SAE ID");
        KAGI__FAIL_IF(strlen(op->master) > KAGI_SAE_ID_MAX, KAGI_ERR_ARG, "key store: malformed master SAE ID");
        /* fallthrough */
    case KAGI_STORE_ADD_BLOCK:
    case KAGI_STORE_TAKE_AT:
        KAGI__FAIL_IF(op->kind == KAGI_STORE_TAKE_AT &&
                          (!op->at || !op->number || op->number > 1u << 16 ||
                           op->size_bytes > KAGI__MAX_KEY_BYTES),
                      KAGI_ERR_ARG, "key store: malformed take request");
        KAGI__FAIL_IF(op->link < 1 || op->link > s->n_links, KAGI_ERR_ARG, "key store: unknown link %u",
                      op->link);
        KAGI__FAIL_IF(op->kind == KAGI_STORE_ADD_BLOCK &&
                          (!op->block || !op->block_len || op->block_len > KAGI_MAX_BLOCK_BYTES),
                      KAGI_ERR_ARG, "key store: block of %zu bytes", op->block_len);
        break;
    case KAGI_STORE_FETCH:
        KAGI__FAIL_IF(!op->master || !op->caller || !op->ids || !op->n_ids || op->n_ids > 1u << 16,
                      KAGI_ERR_ARG, "key store: malformed fetch request");
        break;
    case KAGI__STORE_LINK:
    case KAGI__STORE_SPLIT:
        break;
    default:
        return kagi__err(KAGI_ERR_ARG, "key store: unknown operation %d", (int)op->kind);
    }
    KAGI__FAIL_IF(!op->done, KAGI_ERR_ARG, "key store: operation without a completion callback");
    op->result = KAGI_STORE_FAILED;
    op->front_block = -1;
    op->front_off = 0;
    op->keys = NULL;
    op->n_keys = 0;
    op->material = NULL;
    op->material_len = 0;
    op->next = NULL;
    pthread_mutex_lock(&s->mu);
    if (s->closing) {
        pthread_mutex_unlock(&s->mu);
        return kagi__err(KAGI_ERR_ARG, "key store: closing");
    }
    if (s->tail) s->tail->next = op;
    else s->head = op;
    s->tail = op;
    s->qlen++;
    if (s->qlen == 1 || s->qlen >= s->o.max_batch) pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    return KAGI_OK;
}

typedef struct kagi__waiter {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done;
} kagi__waiter;

static void kagi__wake(kagi_store_op *op)
{
    kagi__waiter *w = op->arg;
    pthread_mutex_lock(&w->mu);
    w->done = 1;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

int kagi_store_run(kagi_store *s, kagi_store_op *op)
{
    kagi__waiter w = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};
    op->done = kagi__wake;
    op->arg = &w;
    KAGI__TRY(kagi_store_submit(s, op));
    pthread_mutex_lock(&w.mu);
    while (!w.done) pthread_cond_wait(&w.cv, &w.mu);
    pthread_mutex_unlock(&w.mu);
    pthread_cond_destroy(&w.cv);
    pthread_mutex_destroy(&w.mu);
    return KAGI_OK;
}

void kagi_store_op_clear(kagi_store_op *op)
{
    if (op->material) {
        kagi_wipe(op->material, op->material_len);
        free(op->material);
    }
    free(op->keys);
    op->material = NULL;
    op->material_len = 0;
    op->keys = NULL;
    op->n_keys = 0;
}

int kagi_store_link(kagi_store *s, const char *name, uint32_t *id)
{
    size_t l = strlen(name);
    KAGI__FAIL_IF(!l || l > KAGI_LINK_NAME_MAX, KAGI_ERR_ARG,
                  "link name '%s' must have 1 to %d characters", name, KAGI_LINK_NAME_MAX);
    kagi_store_op op = {.kind = (kagi_store_kind)KAGI__STORE_LINK, .caller = name};
    KAGI__TRY(kagi_store_run(s, &op));
    KAGI__FAIL_IF(op.result != KAGI_STORE_DONE, KAGI_ERR_IO, "key store: link %s: %s", name, op.msg);
    *id = op.link;
    return KAGI_OK;
}

int kagi_store_split(kagi_store *s, uint32_t link, uint32_t second)
{
    kagi_store_op op = {.kind = (kagi_store_kind)KAGI__STORE_SPLIT, .link = link, .block_id = second};
    KAGI__TRY(kagi_store_run(s, &op));
    KAGI__FAIL_IF(op.result != KAGI_STORE_DONE, KAGI_ERR_ARG, "key store: %s", op.msg);
    return KAGI_OK;
}

uint64_t kagi_store_pool_bytes(const kagi_store *s, uint32_t link)
{
    if (link < 1 || link > KAGI__MAX_LINKS) return 0;
    return atomic_load(&((kagi_store *)s)->pub_pool[link]);
}

int64_t kagi_store_last_block(const kagi_store *s, uint32_t link)
{
    if (link < 1 || link > KAGI__MAX_LINKS) return -1;
    return atomic_load(&((kagi_store *)s)->pub_last[link]);
}

uint64_t kagi_store_pending_count(const kagi_store *s)
{
    return atomic_load(&((kagi_store *)s)->pub_pending);
}

void kagi_store_get_stats(const kagi_store *s, kagi_store_stats *out)
{
    kagi_store *m = (kagi_store *)s;
    out->commits = atomic_load(&m->st_commits);
    out->ops = atomic_load(&m->st_ops);
    out->max_batch = atomic_load(&m->st_max_batch);
    out->fsyncs = atomic_load(&m->st_fsyncs);
    out->fsync_us = atomic_load(&m->st_fsync_us);
    out->fsync_max_us = atomic_load(&m->st_fsync_max_us);
}

/* ---- open / close ---- */

static int kagi__meta_get(kagi_store *s, const char *k, sqlite3_stmt **out)
{
    if (sqlite3_prepare_v2(s->db, "SELECT v FROM meta WHERE k = ?1", -1, out, NULL) != SQLITE_OK)
        return kagi__db_fail(s, "reading meta");
    sqlite3_bind_text(*out, 1, k, -1, SQLITE_STATIC);
    if (sqlite3_step(*out) != SQLITE_ROW) {
        sqlite3_finalize(*out);
        *out = NULL;
    }
    return KAGI_OK;
}

static int kagi__meta_put_blob(kagi_store *s, const char *k, const void *v, size_t n, int64_t iv, int is_int)
{
    sqlite3_stmt *st = s->st[S_META_SET];
    sqlite3_bind_text(st, 1, k, -1, SQLITE_STATIC);
    if (is_int) sqlite3_bind_int64(st, 2, iv);
    else sqlite3_bind_blob(st, 2, v, (int)n, SQLITE_STATIC);
    return kagi__exec(s, S_META_SET);
}

static int kagi__derive(const uint8_t key[KAGI_STORE_KEY_BYTES], const uint8_t *salt, size_t slen,
                        uint8_t out[32])
{
    static const char info[] = "kagi key store v1 aes-256-gcm";
    EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_id(EVP_PKEY_HKDF, NULL);
    size_t olen = 32;
    int ok = c && EVP_PKEY_derive_init(c) == 1 && EVP_PKEY_CTX_set_hkdf_md(c, EVP_sha256()) == 1 &&
             EVP_PKEY_CTX_set1_hkdf_salt(c, salt, (int)slen) == 1 &&
             EVP_PKEY_CTX_set1_hkdf_key(c, key, KAGI_STORE_KEY_BYTES) == 1 &&
             EVP_PKEY_CTX_add1_hkdf_info(c, (const unsigned char *)info, (int)sizeof info - 1) == 1 &&
             EVP_PKEY_derive(c, out, &olen) == 1 && olen == 32;
    EVP_PKEY_CTX_free(c);
    return ok ? KAGI_OK : kagi__err(KAGI_ERR_ARG, "key store: key derivation failed");
}

static const char kagi__check_text[] = "kagi key store check v1";

/* SQLite counts every allocation under a global mutex unless told not to
 * (about 30 lock pairs per delivered key); kagi never reads the counts.
 * Only possible before SQLite initialises: later calls fail harmlessly. */
static pthread_once_t kagi__sqlite_once = PTHREAD_ONCE_INIT;
static void kagi__sqlite_setup(void) { (void)sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0); }

static int kagi__open_db(kagi_store *s, const char *path, const uint8_t key[KAGI_STORE_KEY_BYTES])
{
    pthread_once(&kagi__sqlite_once, kagi__sqlite_setup);
    if (sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                        NULL) != SQLITE_OK)
        return kagi__err(KAGI_ERR_IO, "key store %s: %s", path,
                         s->db ? sqlite3_errmsg(s->db) : "cannot open");
    sqlite3_busy_timeout(s->db, 5000);
    /* Small pages: each commit logs every page it touched, and key rows are
       small and touched at the ends of their tables. */
    KAGI__TRY(kagi__exec_sql(s, "PRAGMA page_size=1024"));
    KAGI__TRY(kagi__exec_sql(s, "PRAGMA journal_mode=WAL"));
    KAGI__TRY(kagi__exec_sql(s, "PRAGMA synchronous=FULL; PRAGMA secure_delete=FAST; "
                                "PRAGMA journal_size_limit=67108864; PRAGMA cache_size=-65536; "
                                "PRAGMA wal_autocheckpoint=0"));
    {
        /* journal_mode answers with a row: make sure WAL took. */
        sqlite3_stmt *st;
        if (sqlite3_prepare_v2(s->db, "PRAGMA journal_mode", -1, &st, NULL) != SQLITE_OK)
            return kagi__db_fail(s, "journal mode");
        int wal = sqlite3_step(st) == SQLITE_ROW &&
                  !strcmp((const char *)sqlite3_column_text(st, 0), "wal");
        sqlite3_finalize(st);
        KAGI__FAIL_IF(!wal, KAGI_ERR_IO, "key store %s: cannot use WAL mode", path);
    }
    KAGI__TRY(kagi__exec_sql(
        s, "BEGIN IMMEDIATE;"
           "CREATE TABLE IF NOT EXISTS meta(k TEXT PRIMARY KEY, v);"
           "CREATE TABLE IF NOT EXISTS links(id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL,"
           " last_block INTEGER NOT NULL DEFAULT -1, next_seq INTEGER NOT NULL DEFAULT 1);"
           "CREATE TABLE IF NOT EXISTS pool(id INTEGER PRIMARY KEY, block INTEGER NOT NULL,"
           " off INTEGER NOT NULL, nonce BLOB NOT NULL, ct BLOB NOT NULL);"
           "CREATE TABLE IF NOT EXISTS pending(id INTEGER PRIMARY KEY, key_id BLOB NOT NULL,"
           " link INTEGER NOT NULL, master TEXT NOT NULL, slaves TEXT NOT NULL,"
           " remaining INTEGER NOT NULL, created INTEGER NOT NULL, nonce BLOB NOT NULL,"
           " ct BLOB NOT NULL);"
           "COMMIT"));
    for (int i = 0; i < S_COUNT; i++)
        if (sqlite3_prepare_v3(s->db, kagi__sql[i], -1, SQLITE_PREPARE_PERSISTENT, &s->st[i], NULL) !=
            SQLITE_OK)
            return kagi__db_fail(s, kagi__sql[i]);

    /* meta: a new store gets its id, unit and check value; an old one must
       match them. */
    sqlite3_stmt *st = NULL;
    KAGI__TRY(kagi__meta_get(s, "dbid", &st));
    uint8_t dbid[16], rowkey[32];
    int fresh = st == NULL;
    KAGI__TRY(kagi__exec(s, S_BEGIN));
    if (fresh) {
        KAGI__TRY(kagi_random_bytes(dbid, sizeof dbid));
        KAGI__TRY(kagi__meta_put_blob(s, "dbid", dbid, sizeof dbid, 0, 0));
        KAGI__TRY(kagi__meta_put_blob(s, "version", NULL, 0, 1, 1));
        KAGI__TRY(kagi__meta_put_blob(s, "unit", NULL, 0, (int64_t)s->o.unit_bytes, 1));
        KAGI__TRY(kagi__meta_put_blob(s, "nonce_hi", NULL, 0, 0, 1));
    } else {
        int ok = sqlite3_column_bytes(st, 0) == (int)sizeof dbid;
        if (ok) memcpy(dbid, sqlite3_column_blob(st, 0), sizeof dbid);
        sqlite3_finalize(st);
        if (!ok) {
            (void)kagi__exec(s, S_ROLLBACK);
            return kagi__err(KAGI_ERR_FORMAT, "key store %s: malformed store id", path);
        }
    }
    int e = kagi__derive(key, dbid, sizeof dbid, rowkey);
    if (!e) {
        s->enc = EVP_CIPHER_CTX_new();
        s->dec = EVP_CIPHER_CTX_new();
        if (!s->enc || !s->dec || EVP_EncryptInit_ex(s->enc, EVP_aes_256_gcm(), NULL, rowkey, NULL) != 1 ||
            EVP_DecryptInit_ex(s->dec, EVP_aes_256_gcm(), NULL, rowkey, NULL) != 1)
            e = kagi__err(KAGI_ERR_NOMEM, "key store: cipher set-up failed");
    }
    kagi_wipe(rowkey, sizeof rowkey);
    if (!e) e = kagi_random_bytes(s->salt, sizeof s->salt);
    /* nonce counter: start above everything ever reserved */
    if (!e) {
        KAGI__TRY(kagi__meta_get(s, "nonce_hi", &st));
        s->nonce_ctr = s->nonce_lim = st ? (uint64_t)sqlite3_column_int64(st, 0) : 0;
        if (st) sqlite3_finalize(st);
        KAGI__TRY(kagi__meta_get(s, "unit", &st));
        int64_t unit = st ? sqlite3_column_int64(st, 0) : 0;
        if (st) sqlite3_finalize(st);
        if (unit != (int64_t)s->o.unit_bytes)
            e = kagi__err(KAGI_ERR_ARG, "key store %s was made for %lld-bit keys, not %zu: key_size "
                          "is fixed for the life of a store", path, (long long)unit * 8,
                          s->o.unit_bytes * 8);
    }
    uint8_t aad[] = "check";
    if (!e && fresh) {
        uint8_t nonce[KAGI__NONCE], blob[KAGI__NONCE + sizeof kagi__check_text + KAGI__TAG];
        e = kagi__reserve(s, 1);
        if (!e) e = kagi__seal(s, aad, sizeof aad, (const uint8_t *)kagi__check_text,
                               sizeof kagi__check_text, nonce, blob + KAGI__NONCE);
        memcpy(blob, nonce, KAGI__NONCE);
        if (!e) e = kagi__meta_put_blob(s, "check", blob, sizeof blob, 0, 0);
    } else if (!e) {
        KAGI__TRY(kagi__meta_get(s, "check", &st));
        uint8_t pt[sizeof kagi__check_text + KAGI__TAG];
        size_t n = st ? (size_t)sqlite3_column_bytes(st, 0) : 0;
        if (n != KAGI__NONCE + sizeof kagi__check_text + KAGI__TAG) {
            e = kagi__err(KAGI_ERR_FORMAT, "key store %s: missing or malformed check value", path);
        } else {
            const uint8_t *b = sqlite3_column_blob(st, 0);
            e = kagi__unseal(s, aad, sizeof aad, b, KAGI__NONCE, b + KAGI__NONCE, n - KAGI__NONCE, pt);
            if (e == KAGI_ERR_AUTH)
                e = kagi__err(KAGI_ERR_AUTH, "key store %s: the at-rest key does not open this store "
                              "(wrong key file?)", path);
        }
        if (st) sqlite3_finalize(st);
    }
    if (!e) e = kagi__exec(s, S_COMMIT);
    if (e) {
        if (!sqlite3_get_autocommit(s->db)) (void)kagi__exec(s, S_ROLLBACK);
        return e;
    }

    /* links, pool sizes and the index of issued keys */
    if (sqlite3_prepare_v2(s->db, "SELECT id, name, last_block, next_seq FROM links", -1, &st, NULL) != SQLITE_OK)
        return kagi__db_fail(s, "reading links");
    while (sqlite3_step(st) == SQLITE_ROW) {
        int64_t id = sqlite3_column_int64(st, 0);
        if (id < 1 || id > KAGI__MAX_LINKS) continue;
        kagi__link *L = &s->links[id];
        snprintf(L->name, sizeof L->name, "%s", (const char *)sqlite3_column_text(st, 1));
        L->last_block = sqlite3_column_int64(st, 2);
        L->next_seq = sqlite3_column_int64(st, 3);
        if ((uint32_t)id > s->n_links) s->n_links = (uint32_t)id;
    }
    sqlite3_finalize(st);
    if (sqlite3_prepare_v2(s->db, "SELECT COALESCE(SUM(length(ct) - 16), 0) FROM pool WHERE id > ?1 AND id < ?2",
                           -1, &st, NULL) != SQLITE_OK)
        return kagi__db_fail(s, "counting the pools");
    for (uint32_t i = 1; i <= s->n_links; i++) {
        sqlite3_bind_int64(st, 1, (sqlite3_int64)kagi__link_lo(i));
        sqlite3_bind_int64(st, 2, (sqlite3_int64)kagi__link_lo(i + 1));
        if (sqlite3_step(st) == SQLITE_ROW) s->links[i].avail = (uint64_t)sqlite3_column_int64(st, 0);
        sqlite3_reset(st);
    }
    sqlite3_finalize(st);
    if (sqlite3_prepare_v2(s->db, "SELECT COUNT(*) FROM pending", -1, &st, NULL) != SQLITE_OK)
        return kagi__db_fail(s, "counting issued keys");
    size_t npend = sqlite3_step(st) == SQLITE_ROW ? (size_t)sqlite3_column_int64(st, 0) : 0;
    sqlite3_finalize(st);
    KAGI__TRY(kagi__idmap_init(&s->idx, npend + 1024));
    if (sqlite3_prepare_v2(s->db, "SELECT id, key_id FROM pending", -1, &st, NULL) != SQLITE_OK)
        return kagi__db_fail(s, "reading issued keys");
    e = KAGI_OK;
    while (!e && sqlite3_step(st) == SQLITE_ROW)
        if (sqlite3_column_bytes(st, 1) == KAGI_KEY_ID_BYTES)
            e = kagi__idmap_put(&s->idx, sqlite3_column_blob(st, 1), sqlite3_column_int64(st, 0));
    sqlite3_finalize(st);
    return e;
}

int kagi_store_open(kagi_store **out, const char *path, const uint8_t key[KAGI_STORE_KEY_BYTES],
                    const kagi_store_opts *opts)
{
    *out = NULL;
    KAGI__FAIL_IF(opts->unit_bytes < 1 || opts->unit_bytes > 4096, KAGI_ERR_ARG,
                  "key store: unit of %zu bytes (1..4096)", opts->unit_bytes);
    kagi_store *s = calloc(1, sizeof *s);
    KAGI__FAIL_IF(!s, KAGI_ERR_NOMEM, "key store: out of memory");
    s->o = *opts;
    s->rnd_off = sizeof s->rnd;
    if (!s->o.max_batch) s->o.max_batch = 1024;
    for (int i = 0; i <= KAGI__MAX_LINKS; i++) {
        s->links[i].last_block = -1;
        s->links[i].next_seq = 1;
    }
    pthread_mutex_init(&s->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->cv, &ca);
    pthread_cond_init(&s->ckcv, &ca);
    pthread_cond_init(&s->sycv, &ca);
    s->walfd = -1;
    pthread_condattr_destroy(&ca);
    int e = kagi__open_db(s, path, key);
    if (e) {
        char why[512];
        snprintf(why, sizeof why, "%s", kagi_errdetail());
        kagi_store_close(s);
        return kagi__err(e, "%s", why);
    }
    kagi__publish(s);
    s->next_gc = kagi__now();
    /* The WAL exists (the set-up transactions wrote it, durably): from now
       on the syncer, not SQLite, makes commits durable. */
    char wal[4200];
    snprintf(wal, sizeof wal, "%s-wal", path);
    s->walfd = open(wal, O_RDONLY | O_CLOEXEC);
    if (s->walfd >= 0 && !getenv("KAGI_XP_NOSYNCER") && kagi__exec_sql(s, "PRAGMA synchronous=OFF") == KAGI_OK)
        s->sy_started = pthread_create(&s->sythread, NULL, kagi__syncer, s) == 0;
    if (!s->sy_started) {
        (void)kagi__exec_sql(s, "PRAGMA synchronous=FULL");
        kagi__log(KAGI__LOG_WARN, "key store: no syncer; every commit syncs itself");
    }
    if (pthread_create(&s->thread, NULL, kagi__committer, s) != 0) {
        kagi_store_close(s);
        return kagi__err(KAGI_ERR_NOMEM, "key store: cannot start the committer thread");
    }
    s->started = 1;
    /* The checkpointer's connection must read once: until it has, it has
       not opened the WAL and every checkpoint on it is a silent no-op
       (pnLog -1), so the WAL would only ever grow. */
    if (sqlite3_open_v2(path, &s->ckdb, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) == SQLITE_OK &&
        sqlite3_busy_handler(s->ckdb, kagi__ck_busy, NULL) == SQLITE_OK &&
        sqlite3_exec(s->ckdb, "PRAGMA synchronous=FULL; SELECT count(*) FROM meta", NULL, NULL, NULL) == SQLITE_OK) {
        s->ck_started = pthread_create(&s->ckthread, NULL, kagi__checkpointer, s) == 0;
    }
    if (!s->ck_started) kagi__log(KAGI__LOG_WARN, "key store: no checkpointer thread; checkpoints at close only");
    *out = s;
    return KAGI_OK;
}

/* Raise one of the store's stop flags under its lock, wake the thread
 * waiting on cv, and join it. */
static void kagi__stop_thread(kagi_store *s, int *flag, pthread_cond_t *cv, pthread_t t)
{
    pthread_mutex_lock(&s->mu);
    *flag = 1;
    pthread_cond_signal(cv);
    pthread_mutex_unlock(&s->mu);
    pthread_join(t, NULL);
}

void kagi_store_close(kagi_store *s)
{
    if (!s) return;
    if (s->started) kagi__stop_thread(s, &s->closing, &s->cv, s->thread);
    if (s->sy_started) {
        kagi__stop_thread(s, &s->sy_closing, &s->sycv, s->sythread);
        (void)kagi__exec_sql(s, "PRAGMA synchronous=FULL");
    }
    if (s->walfd >= 0) close(s->walfd);
    if (s->ck_started) kagi__stop_thread(s, &s->closing, &s->ckcv, s->ckthread);
    if (s->ckdb) sqlite3_close(s->ckdb);
    for (int i = 0; i < S_COUNT; i++) sqlite3_finalize(s->st[i]);
    if (s->db) {
        sqlite3_wal_checkpoint_v2(s->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
        sqlite3_close(s->db);
    }
    EVP_CIPHER_CTX_free(s->enc);
    EVP_CIPHER_CTX_free(s->dec);
    kagi__idmap_free(&s->idx);
    free(s->undo);
    for (int i = 0; i <= KAGI__MAX_LINKS; i++)
        if (s->front[i]) {
            free(s->front[i]->buf);
            free(s->front[i]);
        }
    pthread_cond_destroy(&s->cv);
    pthread_cond_destroy(&s->ckcv);
    pthread_cond_destroy(&s->sycv);
    pthread_mutex_destroy(&s->mu);
    kagi_wipe(s, sizeof *s);
    free(s);
}
