/* Key store: AEAD round trips, tampering detected, wrong at-rest key
 * refused, delivery once per slave, group commit under concurrency, block
 * files and the directory device, the key_ID index. */
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "kagi/error.h"
#include "kagi/kms.h"
#include "t.h"
#include "../src/kms/kms_internal.h"

static char dir[256];

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void mkpath(char *out, size_t n, const char *name)
{
    snprintf(out, n, "%s/%s", dir, name);
}

static void setup(void)
{
    if (dir[0]) return;
    snprintf(dir, sizeof dir, "/tmp/kagi-kms.XXXXXX");
    if (!mkdtemp(dir)) abort();
}

static uint8_t akey[KAGI_STORE_KEY_BYTES];
static kagi_store_opts opts32 = {.unit_bytes = 32};

static kagi_store *open_fresh_with(const char *name, uint32_t *link, const kagi_store_opts *o)
{
    char p[512];
    mkpath(p, sizeof p, name);
    unlink(p);
    char w[600];
    snprintf(w, sizeof w, "%s-wal", p);
    unlink(w);
    snprintf(w, sizeof w, "%s-shm", p);
    unlink(w);
    kagi_store *s = NULL;
    ASSERT_OK(kagi_store_open(&s, p, akey, o));
    if (s && link) ASSERT_OK(kagi_store_link(s, "loop", link));
    return s;
}

static kagi_store *open_fresh(const char *name, uint32_t *link)
{
    return open_fresh_with(name, link, &opts32);
}

static void fill(uint8_t *b, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++) b[i] = (uint8_t)(seed * 131 + i * 7 + (i >> 8));
}

static kagi_store_result add_block(kagi_store *s, uint32_t link, uint64_t id, const uint8_t *b,
                                   size_t n)
{
    kagi_store_op op = {.kind = KAGI_STORE_ADD_BLOCK, .link = link, .block = b, .block_len = n,
                        .block_id = id};
    ASSERT_OK(kagi_store_run(s, &op));
    return op.result;
}

static kagi_store_result issue(kagi_store *s, uint32_t link, unsigned number, size_t size,
                               const char *master, const char *slave, const char *slave2,
                               kagi_store_op *op)
{
    memset(op, 0, sizeof *op);
    op->kind = KAGI_STORE_ISSUE;
    op->link = link;
    op->master = master;
    op->slaves[0] = slave;
    op->n_slaves = slave ? 1 : 0; /* none: for a peer KME */
    if (slave2) op->slaves[op->n_slaves++] = slave2;
    op->number = number;
    op->size_bytes = size;
    ASSERT_OK(kagi_store_run(s, op));
    return op->result;
}

static kagi_store_result fetch(kagi_store *s, const char *master, const char *caller,
                               const uint8_t (*ids)[16], unsigned n, kagi_store_op *op)
{
    memset(op, 0, sizeof *op);
    op->kind = KAGI_STORE_FETCH;
    op->master = master;
    op->caller = caller;
    op->ids = ids;
    op->n_ids = n;
    ASSERT_OK(kagi_store_run(s, op));
    return op->result;
}


static kagi_store_result take_at(kagi_store *s, uint32_t link, const kagi_store_key *at, unsigned n,
                                 size_t size, kagi_store_op *op)
{
    memset(op, 0, sizeof *op);
    op->kind = KAGI_STORE_TAKE_AT;
    op->link = link;
    op->at = at;
    op->number = n;
    op->size_bytes = size;
    ASSERT_OK(kagi_store_run(s, op));
    return op->result;
}

/* Two KMEs, one link: each stores the same device blocks split into two
 * directions; a key one end issues from its direction is found at the
 * other by its position, recorded there under the same key_ID, and
 * fetched by the slave; a position used or skipped is never taken again.
 * The oracle is the device's bytes. */
static void test_two_ends_agree_on_keys_by_position(void)
{
    setup();
    uint32_t a1, a2, b1, b2;
    kagi_store *A = open_fresh("peerA.db", NULL), *B = open_fresh("peerB.db", NULL);
    if (!A || !B) return;
    ASSERT_OK(kagi_store_link(A, "ab", &a1));
    ASSERT_OK(kagi_store_link(A, "ab+", &a2));
    ASSERT_OK(kagi_store_link(B, "ab", &b1));
    ASSERT_OK(kagi_store_link(B, "ab+", &b2));
    ASSERT_OK(kagi_store_split(A, a1, a2));
    ASSERT_OK(kagi_store_split(B, b1, b2));
    uint8_t blk[1000];
    fill(blk, sizeof blk, 7);
    ASSERT_EQ(add_block(A, a1, 1, blk, sizeof blk), KAGI_STORE_DONE);
    ASSERT_EQ(add_block(B, b1, 1, blk, sizeof blk), KAGI_STORE_DONE);
    ASSERT_EQ(kagi_store_pool_bytes(A, a1), 500);
    ASSERT_EQ(kagi_store_pool_bytes(A, a2), 500);

    /* A issues 3 keys of 20 bytes (not a unit multiple: units get split)
       from the first half, for a peer: nothing pending at A */
    kagi_store_op ia, tb, pb, fb;
    ASSERT_EQ(issue(A, a1, 3, 20, "SAE_A", NULL, NULL, &ia), KAGI_STORE_DONE);
    ASSERT_EQ(kagi_store_pending_count(A), 0);
    ASSERT_EQ(ia.n_keys, 3);
    ASSERT_EQ(ia.keys[1].block, 1);
    ASSERT_EQ(ia.keys[1].block_off, 20);
    ASSERT_TRUE(!memcmp(ia.material, blk, 60));
    /* B skips the first key (its message was lost) and takes the other two */
    ASSERT_EQ(take_at(B, b1, ia.keys + 1, 2, 20, &tb), KAGI_STORE_DONE);
    ASSERT_TRUE(!memcmp(tb.material, blk + 20, 40));
    ASSERT_EQ(kagi_store_pool_bytes(B, b1), 500 - 60);
    /* recorded under A's key_IDs; the slave gets them once */
    uint8_t ids[2][16];
    memcpy(ids[0], ia.keys[1].id, 16);
    memcpy(ids[1], ia.keys[2].id, 16);
    memset(&pb, 0, sizeof pb);
    pb.kind = KAGI_STORE_PUT;
    pb.link = b1;
    pb.master = "SAE_A";
    pb.slaves[0] = "SAE_B";
    pb.n_slaves = 1;
    pb.number = 2;
    pb.size_bytes = 20;
    pb.ids = (const uint8_t(*)[16])ids;
    pb.put = tb.material;
    ASSERT_OK(kagi_store_run(B, &pb));
    ASSERT_EQ(pb.result, KAGI_STORE_DONE);
    kagi_store_op_clear(&pb);
    ASSERT_OK(kagi_store_run(B, &pb)); /* the same key_IDs again */
    ASSERT_EQ(pb.result, KAGI_STORE_BAD_ID);
    ASSERT_EQ(fetch(B, "SAE_A", "SAE_B", (const uint8_t(*)[16])ids, 2, &fb), KAGI_STORE_DONE);
    ASSERT_TRUE(!memcmp(fb.material, ia.material + 20, 40));
    kagi_store_op_clear(&fb);
    ASSERT_EQ(fetch(B, "SAE_A", "SAE_B", (const uint8_t(*)[16])ids, 1, &fb), KAGI_STORE_BAD_ID);
    kagi_store_op_clear(&fb);
    /* replays: the skipped key and a taken one are both refused */
    kagi_store_op_clear(&tb);
    ASSERT_EQ(take_at(B, b1, ia.keys, 1, 20, &tb), KAGI_STORE_BAD_ID);
    ASSERT_EQ(take_at(B, b1, ia.keys + 2, 1, 20, &tb), KAGI_STORE_BAD_ID);
    ASSERT_EQ(kagi_store_pool_bytes(B, b1), 500 - 60); /* a refused take changes nothing */
    /* a position in a block B has not stored yet: no key, nothing dropped */
    kagi_store_key ahead = {.block = 2, .block_off = 0};
    ASSERT_EQ(take_at(B, b1, &ahead, 1, 20, &tb), KAGI_STORE_NO_KEY);
    ASSERT_EQ(kagi_store_pool_bytes(B, b1), 500 - 60);
    uint8_t blk2[64];
    fill(blk2, sizeof blk2, 9);
    ASSERT_EQ(add_block(B, b1, 2, blk2, sizeof blk2), KAGI_STORE_DONE);
    ASSERT_EQ(take_at(B, b1, &ahead, 1, 20, &tb), KAGI_STORE_DONE);
    ASSERT_TRUE(!memcmp(tb.material, blk2, 20));
    ASSERT_EQ(kagi_store_pool_bytes(B, b1), 12);   /* block 1's rest dropped */
    kagi_store_op_clear(&tb);
    /* the other direction: B issues from the second half, A finds it */
    kagi_store_op ib;
    ASSERT_EQ(issue(B, b2, 1, 32, "SAE_B", NULL, NULL, &ib), KAGI_STORE_DONE);
    ASSERT_TRUE(!memcmp(ib.material, blk + 500, 32));
    ASSERT_EQ(take_at(A, a2, ib.keys, 1, 32, &tb), KAGI_STORE_DONE);
    ASSERT_TRUE(!memcmp(tb.material, ib.material, 32));
    kagi_store_op_clear(&tb);
    kagi_store_op_clear(&ib);
    kagi_store_op_clear(&ia);
    kagi_store_op_clear(&pb);
    kagi_store_close(A);
    kagi_store_close(B);
}


/* The checkpointer copies committed pages into the database file while
 * the store runs (before the fix its connection had never read, every
 * checkpoint was a no-op, and the WAL grew without end). Oracle: the
 * database file's size on disk, before and after a checkpoint period. */
static void test_checkpointer_backfills_the_database(void)
{
    setup();
    uint32_t link;
    kagi_store *s = open_fresh("ck.db", &link);
    if (!s) return;
    char p[512];
    mkpath(p, sizeof p, "ck.db");
    struct stat st0, st1;
    ASSERT_TRUE(stat(p, &st0) == 0);
    static uint8_t blk[256 * 1024];
    fill(blk, sizeof blk, 3);
    ASSERT_EQ(add_block(s, link, 1, blk, sizeof blk), KAGI_STORE_DONE);
    sleep_ms(1500);
    ASSERT_TRUE(stat(p, &st1) == 0);
    if (st1.st_size <= st0.st_size + 128 * 1024)
        printf("  database file %lld -> %lld bytes: nothing checkpointed\n", (long long)st0.st_size,
               (long long)st1.st_size);
    ASSERT_TRUE(st1.st_size > st0.st_size + 128 * 1024); /* 8192 sealed units of 32 bytes */
    kagi_store_close(s);
}

static void test_store_key_file_rules(void)
{
    setup();
    char p[512], l[512];
    mkpath(p, sizeof p, "k1");
    unlink(p);
    ASSERT_OK(kagi_store_key_new(p));
    struct stat st;
    ASSERT_EQ(stat(p, &st), 0);
    ASSERT_EQ(st.st_mode & 0777, 0600);
    ASSERT_EQ(st.st_size, KAGI_STORE_KEY_BYTES);
    uint8_t k[32];
    ASSERT_OK(kagi_store_key_read(p, k));
    ASSERT_EQ(kagi_store_key_new(p), KAGI_ERR_IO);          /* never overwrites */
    chmod(p, 0640);
    ASSERT_EQ(kagi_store_key_read(p, k), KAGI_ERR_ARG);
    ASSERT_TRUE(strstr(kagi_errdetail(), "mode 0640") != NULL);
    chmod(p, 0604);
    ASSERT_EQ(kagi_store_key_read(p, k), KAGI_ERR_ARG);
    chmod(p, 0400);
    ASSERT_OK(kagi_store_key_read(p, k));
    mkpath(l, sizeof l, "k1-link");
    unlink(l);
    ASSERT_EQ(symlink(p, l), 0);
    ASSERT_EQ(kagi_store_key_read(l, k), KAGI_ERR_ARG);
    ASSERT_TRUE(strstr(kagi_errdetail(), "symbolic link") != NULL);
    mkpath(p, sizeof p, "k2");
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ASSERT_EQ(write(fd, k, 31), 31);
    close(fd);
    ASSERT_EQ(kagi_store_key_read(p, k), KAGI_ERR_ARG);
    ASSERT_TRUE(strstr(kagi_errdetail(), "31 bytes") != NULL);
}

static void test_issue_then_fetch_returns_the_device_bytes_once(void)
{
    setup();
    uint32_t link = 0;
    kagi_store *s = open_fresh("rt.db", &link);
    if (!s) return;
    uint8_t blk[100];
    fill(blk, sizeof blk, 1);
    ASSERT_EQ(add_block(s, link, 7, blk, sizeof blk), KAGI_STORE_DONE);
    ASSERT_EQ(kagi_store_pool_bytes(s, link), 100);
    ASSERT_EQ(kagi_store_last_block(s, link), 7);
    kagi_store_op a, b;
    /* Three 16-byte keys: the first 48 bytes of the block, in order. */
    ASSERT_EQ(issue(s, link, 3, 16, "A", "B", NULL, &a), KAGI_STORE_DONE);
    ASSERT_EQ(a.n_keys, 3);
    ASSERT_EQ(a.material_len, 48);
    ASSERT_TRUE(a.material && !memcmp(a.material, blk, 48));
    ASSERT_EQ(kagi_store_pool_bytes(s, link), 52);
    ASSERT_EQ(kagi_store_pending_count(s), 3);
    /* each key knows where it starts in the link's stream (for the peer) */
    ASSERT_EQ(a.keys[0].block, 7);
    ASSERT_EQ(a.keys[0].block_off, 0);
    ASSERT_EQ(a.keys[1].block_off, 16);
    ASSERT_EQ(a.keys[2].block_off, 32);
    /* key_IDs are version-4 UUIDs and distinct */
    ASSERT_EQ(a.keys[0].id[6] >> 4, 4);
    ASSERT_EQ(a.keys[0].id[8] >> 6, 2);
    ASSERT_TRUE(memcmp(a.keys[0].id, a.keys[1].id, 16) != 0);
    uint8_t ids[3][16];
    for (int i = 0; i < 3; i++) memcpy(ids[i], a.keys[i].id, 16);
    /* The slave gets the same bytes, in the order it asked. */
    uint8_t rev[2][16];
    memcpy(rev[0], ids[2], 16);
    memcpy(rev[1], ids[0], 16);
    ASSERT_EQ(fetch(s, "A", "B", (const uint8_t(*)[16])rev, 2, &b), KAGI_STORE_DONE);
    ASSERT_EQ(b.n_keys, 2);
    ASSERT_TRUE(b.material && !memcmp(b.material + b.keys[0].off, blk + 32, 16));
    ASSERT_TRUE(b.material && !memcmp(b.material + b.keys[1].off, blk, 16));
    kagi_store_op_clear(&b);
    /* Again: already delivered. A third party: not named. The wrong master: not named. */
    ASSERT_EQ(fetch(s, "A", "B", (const uint8_t(*)[16])ids, 1, &b), KAGI_STORE_BAD_ID);
    ASSERT_TRUE(strstr(b.msg, "not found") != NULL);
    ASSERT_EQ(fetch(s, "A", "C", (const uint8_t(*)[16])(ids + 1), 1, &b), KAGI_STORE_NOT_NAMED);
    ASSERT_EQ(fetch(s, "Z", "B", (const uint8_t(*)[16])(ids + 1), 1, &b), KAGI_STORE_NOT_NAMED);
    ASSERT_EQ(b.material, NULL);
    /* A request with one bad ID delivers none of them. */
    uint8_t mix[2][16];
    memcpy(mix[0], ids[1], 16);
    memcpy(mix[1], ids[0], 16);
    ASSERT_EQ(fetch(s, "A", "B", (const uint8_t(*)[16])mix, 2, &b), KAGI_STORE_BAD_ID);
    ASSERT_EQ(fetch(s, "A", "B", (const uint8_t(*)[16])mix, 1, &b), KAGI_STORE_DONE);
    ASSERT_TRUE(b.material && !memcmp(b.material, blk + 16, 16));
    kagi_store_op_clear(&b);
    ASSERT_EQ(kagi_store_pending_count(s), 0);
    /* A key longer than a unit spans units; one that cannot be served takes nothing. */
    ASSERT_EQ(issue(s, link, 1, 40, "A", "B", NULL, &b), KAGI_STORE_DONE);
    ASSERT_TRUE(b.material && !memcmp(b.material, blk + 48, 40));
    kagi_store_op_clear(&b);
    ASSERT_EQ(issue(s, link, 2, 8, "A", "B", NULL, &b), KAGI_STORE_NO_KEY);
    ASSERT_EQ(kagi_store_pool_bytes(s, link), 12);
    ASSERT_EQ(issue(s, link, 1, 12, "A", "B", NULL, &b), KAGI_STORE_DONE);
    ASSERT_TRUE(b.material && !memcmp(b.material, blk + 88, 12));
    kagi_store_op_clear(&b);
    ASSERT_EQ(kagi_store_pool_bytes(s, link), 0);
    kagi_store_op_clear(&a);
    /* Block ids only go up. */
    ASSERT_EQ(add_block(s, link, 7, blk, 10), KAGI_STORE_BAD_ID);
    ASSERT_EQ(add_block(s, link, 3, blk, 10), KAGI_STORE_BAD_ID);
    kagi_store_close(s);
}

static void test_multi_slave_each_once_then_gone(void)
{
    setup();
    uint32_t link = 0;
    kagi_store *s = open_fresh("ms.db", &link);
    if (!s) return;
    uint8_t blk[64];
    fill(blk, sizeof blk, 2);
    ASSERT_EQ(add_block(s, link, 0, blk, sizeof blk), KAGI_STORE_DONE);
    kagi_store_op a, b;
    ASSERT_EQ(issue(s, link, 1, 32, "A", "B", "C", &a), KAGI_STORE_DONE);
    const uint8_t(*id)[16] = (const uint8_t(*)[16])a.keys[0].id;
    ASSERT_EQ(fetch(s, "A", "B", id, 1, &b), KAGI_STORE_DONE);
    ASSERT_TRUE(b.material && !memcmp(b.material, blk, 32));
    kagi_store_op_clear(&b);
    ASSERT_EQ(fetch(s, "A", "B", id, 1, &b), KAGI_STORE_BAD_ID);
    ASSERT_TRUE(strstr(b.msg, "already delivered") != NULL);
    ASSERT_EQ(kagi_store_pending_count(s), 1);
    ASSERT_EQ(fetch(s, "A", "C", id, 1, &b), KAGI_STORE_DONE);
    ASSERT_TRUE(b.material && !memcmp(b.material, blk, 32));
    kagi_store_op_clear(&b);
    ASSERT_EQ(kagi_store_pending_count(s), 0);
    ASSERT_EQ(fetch(s, "A", "C", id, 1, &b), KAGI_STORE_BAD_ID);
    kagi_store_op_clear(&a);
    kagi_store_close(s);
}

static void test_reopen_keeps_pool_and_issued_keys(void)
{
    setup();
    uint32_t link = 0;
    kagi_store *s = open_fresh("re.db", &link);
    if (!s) return;
    uint8_t blk[96];
    fill(blk, sizeof blk, 3);
    ASSERT_EQ(add_block(s, link, 1, blk, sizeof blk), KAGI_STORE_DONE);
    kagi_store_op a, b;
    ASSERT_EQ(issue(s, link, 1, 32, "A", "B", NULL, &a), KAGI_STORE_DONE);
    kagi_store_close(s);
    char p[512];
    mkpath(p, sizeof p, "re.db");
    ASSERT_OK(kagi_store_open(&s, p, akey, &opts32));
    if (!s) return;
    uint32_t l2 = 0;
    ASSERT_OK(kagi_store_link(s, "loop", &l2));
    ASSERT_EQ(l2, link);
    ASSERT_EQ(kagi_store_pool_bytes(s, link), 64);
    ASSERT_EQ(kagi_store_last_block(s, link), 1);
    ASSERT_EQ(kagi_store_pending_count(s), 1);
    ASSERT_EQ(fetch(s, "A", "B", (const uint8_t(*)[16])a.keys[0].id, 1, &b), KAGI_STORE_DONE);
    ASSERT_TRUE(b.material && !memcmp(b.material, blk, 32));
    kagi_store_op_clear(&b);
    ASSERT_EQ(issue(s, link, 1, 32, "A", "B", NULL, &b), KAGI_STORE_DONE);
    ASSERT_TRUE(b.material && !memcmp(b.material, blk + 32, 32));
    kagi_store_op_clear(&b);
    kagi_store_op_clear(&a);
    kagi_store_close(s);
    /* Another unit size is refused: key_size is fixed for a store. */
    kagi_store_opts o16 = {.unit_bytes = 16};
    ASSERT_EQ(kagi_store_open(&s, p, akey, &o16), KAGI_ERR_ARG);
    ASSERT_TRUE(strstr(kagi_errdetail(), "256-bit") != NULL);
}

static void test_wrong_at_rest_key_is_refused(void)
{
    setup();
    uint32_t link = 0;
    kagi_store *s = open_fresh("wk.db", &link);
    if (!s) return;
    kagi_store_close(s);
    uint8_t other[32];
    memcpy(other, akey, 32);
    other[5] ^= 1;
    char p[512];
    mkpath(p, sizeof p, "wk.db");
    ASSERT_EQ(kagi_store_open(&s, p, other, &opts32), KAGI_ERR_AUTH);
    ASSERT_TRUE(strstr(kagi_errdetail(), "does not open this store") != NULL);
    ASSERT_EQ(s, NULL);
    ASSERT_OK(kagi_store_open(&s, p, akey, &opts32));
    kagi_store_close(s);
}

static void sql(const char *name, const char *q)
{
    char p[512];
    mkpath(p, sizeof p, name);
    sqlite3 *db;
    ASSERT_EQ(sqlite3_open(p, &db), SQLITE_OK);
    char *err = NULL;
    if (sqlite3_exec(db, q, NULL, NULL, &err) != SQLITE_OK) T_FAIL("%s: %s", q, err);
    sqlite3_free(err);
    sqlite3_close(db);
}

/* Flip one bit of the ciphertext of the pool's first unit. */
/* Flip a ciphertext bit of the pool's nth unit (0: its front). */
static void flip_pool_bit(const char *name, int nth)
{
    char p[512];
    mkpath(p, sizeof p, name);
    sqlite3 *db;
    sqlite3_stmt *st;
    ASSERT_EQ(sqlite3_open(p, &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_prepare_v2(db, "SELECT id, ct FROM pool ORDER BY id LIMIT 1 OFFSET ?1", -1, &st, NULL), SQLITE_OK);
    sqlite3_bind_int(st, 1, nth);
    ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
    sqlite3_int64 id = sqlite3_column_int64(st, 0);
    uint8_t ct[64];
    int n = sqlite3_column_bytes(st, 1);
    ASSERT_TRUE(n > 16 && n <= 48);
    memcpy(ct, sqlite3_column_blob(st, 1), (size_t)n);
    sqlite3_finalize(st);
    ct[3] ^= 0x10;
    ASSERT_EQ(sqlite3_prepare_v2(db, "UPDATE pool SET ct = ?2 WHERE id = ?1", -1, &st, NULL), SQLITE_OK);
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_blob(st, 2, ct, n, SQLITE_STATIC);
    ASSERT_EQ(sqlite3_step(st), SQLITE_DONE);
    sqlite3_finalize(st);
    sqlite3_close(db);
}
static void test_tampered_rows_are_detected(void)
{
    setup();
    uint32_t link = 0;
    kagi_store *s = open_fresh("tp.db", &link);
    if (!s) return;
    uint8_t blk[128];
    fill(blk, sizeof blk, 4);
    ASSERT_EQ(add_block(s, link, 1, blk, sizeof blk), KAGI_STORE_DONE);
    kagi_store_op a, b, c;
    ASSERT_EQ(issue(s, link, 1, 32, "A", "B", NULL, &a), KAGI_STORE_DONE);
    ASSERT_EQ(issue(s, link, 1, 32, "A", "B", NULL, &c), KAGI_STORE_DONE);
    kagi_store_close(s);
    /* a flipped ciphertext bit in the pool's next unit; an issued key
       re-addressed to another slave; two issued keys' ciphertexts swapped */
    flip_pool_bit("tp.db", 0);
    sql("tp.db", "UPDATE pending SET slaves = 'X' WHERE id = (SELECT MIN(id) FROM pending)");
    char p[512];
    mkpath(p, sizeof p, "tp.db");
    ASSERT_OK(kagi_store_open(&s, p, akey, &opts32));
    if (!s) return;
    ASSERT_EQ(issue(s, link, 1, 32, "A", "B", NULL, &b), KAGI_STORE_FAILED);
    ASSERT_TRUE(strstr(b.msg, "integrity") != NULL);
    ASSERT_EQ(b.material, NULL);
    /* the bad unit is dropped; the next one serves */
    ASSERT_EQ(kagi_store_pool_bytes(s, link), 32);
    ASSERT_EQ(issue(s, link, 1, 32, "A", "B", NULL, &b), KAGI_STORE_DONE);
    ASSERT_TRUE(b.material && !memcmp(b.material, blk + 96, 32));
    kagi_store_op_clear(&b);
    ASSERT_EQ(fetch(s, "A", "X", (const uint8_t(*)[16])a.keys[0].id, 1, &b), KAGI_STORE_FAILED);
    ASSERT_EQ(b.material, NULL);
    kagi_store_close(s);
    sql("tp.db", "CREATE TEMP TABLE t AS SELECT id, nonce, ct FROM pending;"
                 "UPDATE pending SET ct = (SELECT ct FROM t WHERE t.id <> pending.id),"
                 " nonce = (SELECT nonce FROM t WHERE t.id <> pending.id)");
    ASSERT_OK(kagi_store_open(&s, p, akey, &opts32));
    if (!s) return;
    ASSERT_EQ(fetch(s, "A", "B", (const uint8_t(*)[16])c.keys[0].id, 1, &b), KAGI_STORE_FAILED);
    ASSERT_EQ(b.material, NULL);
    kagi_store_op_clear(&a);
    kagi_store_op_clear(&c);
    kagi_store_close(s);
}

/* The front is read ahead 64 units at a time and taken units are deleted
 * once per batch: across refills, split units (their rest resealed),
 * refused requests, a reopen and new blocks behind the front, the keys are
 * the device's stream in order, each byte once, and the deletes reach the
 * database (a reopen counts the pool from its rows). */
static void test_read_ahead_front_keeps_the_stream(void)
{
    setup();
    uint32_t link = 0;
    kagi_store *s = open_fresh("ra.db", &link);
    if (!s) return;
    static uint8_t dev[3 * 4000 + 50];
    size_t nb[3] = {4000, 4000 + 50 - 32 * 3, 4000 + 32 * 3}; /* ragged: units shorter at block ends */
    fill(dev, sizeof dev, 9);
    size_t at = 0;
    for (uint64_t b = 0; b < 2; b++) {
        ASSERT_EQ(add_block(s, link, b + 1, dev + at, nb[b]), KAGI_STORE_DONE);
        at += nb[b];
    }
    size_t got = 0, stored = at;
    static const size_t sizes[] = {32, 16, 48, 8, 32, 64, 24};
    kagi_store_op op;
    for (int i = 0; got < sizeof dev; i++) {
        if (i == 150) { /* reopen mid-stream: only what was taken is gone */
            kagi_store_close(s);
            char p[512];
            mkpath(p, sizeof p, "ra.db");
            /* and the front's second unit tampered with */
            sqlite3 *db;
            sqlite3_stmt *st;
            ASSERT_EQ(sqlite3_open(p, &db), SQLITE_OK);
            ASSERT_EQ(sqlite3_prepare_v2(db, "SELECT length(ct) - 16 FROM pool ORDER BY id LIMIT 2", -1, &st, NULL),
                      SQLITE_OK);
            size_t l1 = sqlite3_step(st) == SQLITE_ROW ? (size_t)sqlite3_column_int64(st, 0) : 0;
            size_t l2 = sqlite3_step(st) == SQLITE_ROW ? (size_t)sqlite3_column_int64(st, 0) : 0;
            sqlite3_finalize(st);
            sqlite3_close(db);
            ASSERT_TRUE(l1 > 0 && l2 > 0);
            flip_pool_bit("ra.db", 1);
            ASSERT_OK(kagi_store_open(&s, p, akey, &opts32));
            if (!s) return;
            ASSERT_OK(kagi_store_link(s, "loop", &link));
            ASSERT_EQ(kagi_store_pool_bytes(s, link), stored - got);
            /* a two-key request: the first key's unit is taken, the second's
               fails; the request gets nothing, the bad unit is dropped, the
               first unit serves the next request */
            ASSERT_EQ(issue(s, link, 2, l1, "A", "B", NULL, &op), KAGI_STORE_FAILED);
            ASSERT_EQ(kagi_store_pool_bytes(s, link), stored - got - l2);
            ASSERT_EQ(issue(s, link, 1, l1, "A", "B", NULL, &op), KAGI_STORE_DONE);
            ASSERT_TRUE(op.material && !memcmp(op.material, dev + got, l1));
            kagi_store_op_clear(&op);
            got += l1 + l2; /* the dropped unit's bytes are gone from the stream */
        }
        if (i == 200) { /* a block behind the cached front */
            ASSERT_EQ(add_block(s, link, 3, dev + at, nb[2]), KAGI_STORE_DONE);
            stored += nb[2];
        }
        if (i % 37 == 5) { /* more than is stored: refused, nothing taken */
            ASSERT_EQ(issue(s, link, 8, 4096, "A", "B", NULL, &op), KAGI_STORE_NO_KEY);
            ASSERT_EQ(kagi_store_pool_bytes(s, link), stored - got);
        }
        size_t want = sizes[i % 7];
        if (want > stored - got) want = stored - got;
        if (!want) break;
        unsigned n = i % 5 == 0 && want * 2 <= stored - got ? 2 : 1; /* some two-key requests */
        ASSERT_EQ(issue(s, link, n, want, "A", "B", NULL, &op), KAGI_STORE_DONE);
        ASSERT_TRUE(op.material && !memcmp(op.material, dev + got, n * want));
        got += n * want;
        kagi_store_op_clear(&op);
        ASSERT_EQ(kagi_store_pool_bytes(s, link), stored - got);
    }
    ASSERT_EQ(got, sizeof dev);
    ASSERT_EQ(issue(s, link, 1, 8, "A", "B", NULL, &op), KAGI_STORE_NO_KEY);
    kagi_store_close(s);
    char p[512];
    mkpath(p, sizeof p, "ra.db");
    ASSERT_OK(kagi_store_open(&s, p, akey, &opts32));
    if (!s) return;
    ASSERT_OK(kagi_store_link(s, "loop", &link));
    ASSERT_EQ(kagi_store_pool_bytes(s, link), 0);
    kagi_store_close(s);
}

typedef struct {
    kagi_store *s;
    uint32_t link;
    uint8_t ids[200][16];
    uint8_t first[200];
    int ok;
} worker_t;

static void *worker(void *arg)
{
    worker_t *w = arg;
    for (int i = 0; i < 200; i++) {
        kagi_store_op op = {.kind = KAGI_STORE_ISSUE, .link = w->link, .master = "A", .slaves = {"B"},
                            .n_slaves = 1, .number = 1, .size_bytes = 32};
        if (kagi_store_run(w->s, &op) || op.result != KAGI_STORE_DONE) continue;
        memcpy(w->ids[i], op.keys[0].id, 16);
        w->first[i] = op.material[0];
        kagi_store_op_clear(&op);
        w->ok++;
    }
    return NULL;
}

static void group_commit_run(int pace)
{
    setup();
    uint32_t link = 0;
    kagi_store_opts o = opts32;
    o.pace_fsyncs = pace;
    kagi_store *s = open_fresh_with(pace ? "gc-paced.db" : "gc.db", &link, &o);
    if (!s) return;
    static uint8_t blk[8 * 200 * 32];
    for (size_t i = 0; i < sizeof blk; i += 32) fill(blk + i, 32, (unsigned)(i / 32));
    ASSERT_EQ(add_block(s, link, 1, blk, sizeof blk), KAGI_STORE_DONE);
    kagi_store_stats st0, st1;
    kagi_store_get_stats(s, &st0);
    static worker_t w[8];
    pthread_t th[8];
    for (int i = 0; i < 8; i++) {
        memset(&w[i], 0, sizeof w[i]);
        w[i].s = s;
        w[i].link = link;
        pthread_create(&th[i], NULL, worker, &w[i]);
    }
    for (int i = 0; i < 8; i++) pthread_join(th[i], NULL);
    kagi_store_get_stats(s, &st1);
    int total = 0;
    for (int i = 0; i < 8; i++) total += w[i].ok;
    ASSERT_EQ(total, 1600);
    ASSERT_EQ(kagi_store_pool_bytes(s, link), 0);
    ASSERT_EQ(kagi_store_pending_count(s), 1600);
    ASSERT_EQ(st1.ops - st0.ops, 1600);
    ASSERT_TRUE(st1.commits - st0.commits < 1600); /* batched */
    ASSERT_TRUE(st1.max_batch > 1);
    /* Every unit went to exactly one request: key_IDs distinct and the
       first bytes (one per unit) a permutation of the units'. */
    int seen[256] = {0};
    for (int i = 0; i < 8; i++)
        for (int j = 0; j < 200; j++) seen[w[i].first[j]]++;
    int expect[256] = {0};
    for (size_t i = 0; i < sizeof blk; i += 32) expect[blk[i]]++;
    ASSERT_TRUE(!memcmp(seen, expect, sizeof seen));
    kagi__idmap m;
    ASSERT_OK(kagi__idmap_init(&m, 16));
    for (int i = 0; i < 8; i++)
        for (int j = 0; j < 200; j++) {
            ASSERT_EQ(kagi__idmap_get(&m, w[i].ids[j]), 0);
            ASSERT_OK(kagi__idmap_put(&m, w[i].ids[j], 1));
        }
    kagi__idmap_free(&m);
    kagi_store_close(s);
}

static void test_group_commit_batches_concurrent_requests(void)
{
    group_commit_run(0);
}

/* The same with commit pacing (the KME's default): batches held back by
   the fsync time still give every unit to exactly one request. */
static void test_paced_group_commit_batches_concurrent_requests(void)
{
    group_commit_run(1);
}

/* The pacing rule: twice the mean fsync time, at most 0.7 ms, or the fixed
   interval if longer; nothing without either. */
static void test_commit_gap_rule(void)
{
    ASSERT_NEAR(kagi__commit_gap(0, 0, 0.004), 0, 0);
    ASSERT_NEAR(kagi__commit_gap(500, 0, 0.004), 500e-6, 1e-12);
    ASSERT_NEAR(kagi__commit_gap(0, 1, 0.0003), 0.0006, 1e-12);
    ASSERT_NEAR(kagi__commit_gap(0, 1, 0.004), 0.0007, 1e-12); /* capped */
    ASSERT_NEAR(kagi__commit_gap(0, 1, 0.0004), 0.0007, 1e-12);
    ASSERT_NEAR(kagi__commit_gap(1000, 1, 0.0003), 0.001, 1e-12);
    ASSERT_NEAR(kagi__commit_gap(300, 1, 0.0003), 0.0006, 1e-12);
    ASSERT_NEAR(kagi__commit_gap(0, 1, 0), 0, 0);
}

static void test_idmap_insert_delete(void)
{
    kagi__idmap m;
    ASSERT_OK(kagi__idmap_init(&m, 4));
    static uint8_t ids[5000][16];
    kagi_rng r;
    kagi_rng_seed(&r, 9);
    for (int i = 0; i < 5000; i++) {
        for (int j = 0; j < 16; j++) ids[i][j] = (uint8_t)kagi_rng_next(&r);
        ids[i][0] = (uint8_t)(i & 3); /* clustered hashes too */
        ASSERT_OK(kagi__idmap_put(&m, ids[i], i + 1));
    }
    ASSERT_EQ(m.n, 5000);
    for (int i = 0; i < 5000; i += 2) ASSERT_EQ(kagi__idmap_del(&m, ids[i]), 1);
    int bad = 0;
    for (int i = 0; i < 5000; i++) bad += kagi__idmap_get(&m, ids[i]) != (i % 2 ? i + 1 : 0);
    ASSERT_EQ(bad, 0);
    ASSERT_EQ(m.n, 2500);
    ASSERT_EQ(kagi__idmap_del(&m, ids[0]), 0);
    kagi__idmap_free(&m);
}

static void test_uuid_parse_and_format(void)
{
    uint8_t id[16];
    char s[37];
    ASSERT_OK(kagi_uuid_parse("550E8400-e29b-41d4-a716-446655440000", 36, id));
    kagi_uuid_format(id, s);
    ASSERT_TRUE(!strcmp(s, "550e8400-e29b-41d4-a716-446655440000"));
    ASSERT_EQ(kagi_uuid_parse("550e8400-e29b-41d4-a716-44665544000", 35, id), KAGI_ERR_FORMAT);
    ASSERT_EQ(kagi_uuid_parse("550e8400xe29b-41d4-a716-446655440000", 36, id), KAGI_ERR_FORMAT);
    ASSERT_EQ(kagi_uuid_parse("550e8400-e29b-41d4-a716-44665544000g", 36, id), KAGI_ERR_FORMAT);
}

static int count_files(const char *d, const char *suffix)
{
    DIR *h = opendir(d);
    int n = 0;
    struct dirent *e;
    while (h && (e = readdir(h)))
        if (strlen(e->d_name) > strlen(suffix) &&
            !strcmp(e->d_name + strlen(e->d_name) - strlen(suffix), suffix))
            n++;
    if (h) closedir(h);
    return n;
}

static void test_directory_device_ingests_and_removes_files(void)
{
    setup();
    uint32_t link = 0;
    kagi_store *s = open_fresh("dd.db", &link);
    if (!s) return;
    char spool[512];
    mkpath(spool, sizeof spool, "spool");
    mkdir(spool, 0700);
    uint8_t b1[80], b2[40];
    fill(b1, sizeof b1, 5);
    fill(b2, sizeof b2, 6);
    ASSERT_OK(kagi_block_write(spool, "loop", 10, b1, sizeof b1));
    ASSERT_OK(kagi_block_write(spool, "loop", 11, b2, sizeof b2));
    ASSERT_OK(kagi_block_write(spool, "other", 12, b2, sizeof b2));
    char junk[600];
    snprintf(junk, sizeof junk, "%s/zz-junk.key", spool);
    FILE *f = fopen(junk, "w");
    fputs("KAGIBLK1 not really", f);
    fclose(f);
    snprintf(junk, sizeof junk, "%s/partial.tmp", spool);
    f = fopen(junk, "w");
    fputs("ignored", f);
    fclose(f);
    unsigned stored = 0;
    ASSERT_OK(kagi_device_dir_scan(s, link, "loop", spool, 1 << 20, &stored));
    ASSERT_EQ(stored, 2);
    ASSERT_EQ(kagi_store_pool_bytes(s, link), 120);
    ASSERT_EQ(count_files(spool, ".key"), 0);
    ASSERT_EQ(count_files(spool, ".bad"), 2);     /* other link; malformed */
    ASSERT_EQ(count_files(spool, ".tmp"), 1);     /* not ours to touch */
    /* A block already stored (crash before the removal) is removed, not stored twice. */
    ASSERT_OK(kagi_block_write(spool, "loop", 11, b2, sizeof b2));
    ASSERT_OK(kagi_device_dir_scan(s, link, "loop", spool, 1 << 20, &stored));
    ASSERT_EQ(stored, 0);
    ASSERT_EQ(count_files(spool, ".key"), 0);
    ASSERT_EQ(kagi_store_pool_bytes(s, link), 120);
    kagi_store_op a;
    ASSERT_EQ(issue(s, link, 1, 88, "A", "B", NULL, &a), KAGI_STORE_DONE);
    ASSERT_TRUE(a.material && !memcmp(a.material, b1, 80) && !memcmp(a.material + 80, b2, 8));
    kagi_store_op_clear(&a);
    /* The pool cap pauses ingestion. */
    ASSERT_OK(kagi_block_write(spool, "loop", 20, b1, sizeof b1));
    ASSERT_OK(kagi_device_dir_scan(s, link, "loop", spool, 32, &stored));
    ASSERT_EQ(stored, 0);
    ASSERT_EQ(count_files(spool, ".key"), 1);
    kagi_store_close(s);
}

static void test_block_parse_names_the_field(void)
{
    uint8_t buf[KAGI_BLOCK_HEADER + 4] = "KAGIBLK1";
    buf[16] = 4;
    memcpy(buf + 20, "ab", 2);
    char link[32];
    uint64_t id;
    const uint8_t *k;
    size_t n;
    ASSERT_OK(kagi_block_parse(buf, sizeof buf, link, &id, &k, &n));
    ASSERT_EQ(n, 4);
    ASSERT_TRUE(!strcmp(link, "ab"));
    ASSERT_EQ(kagi_block_parse(buf, sizeof buf - 1, link, &id, &k, &n), KAGI_ERR_FORMAT);
    ASSERT_TRUE(strstr(kagi_errdetail(), "header says 4") != NULL);
    buf[15] = 0x80;
    ASSERT_EQ(kagi_block_parse(buf, sizeof buf, link, &id, &k, &n), KAGI_ERR_FORMAT);
    buf[15] = 0;
    buf[0] = 'X';
    ASSERT_EQ(kagi_block_parse(buf, sizeof buf, link, &id, &k, &n), KAGI_ERR_FORMAT);
}

static void test_simulated_device_fills_at_its_rate(void)
{
    setup();
    uint32_t link = 0;
    kagi_store *s = open_fresh("sim.db", &link);
    if (!s) return;
    /* 64 kbit/s x 10 = 80 kB/s in 1 kB blocks: ~40 blocks in 0.5 s. */
    kagi_device_sim_opts o = {.bps = 64000, .speedup = 10, .block_bytes = 1000, .cap_bytes = 1 << 30};
    kagi_device *d = NULL;
    double t0 = kagi__now();
    ASSERT_OK(kagi_device_sim_start(&d, s, link, "loop", &o));
    sleep_ms(500);
    kagi_device_stop(d);
    double dt = kagi__now() - t0;
    uint64_t got = kagi_store_pool_bytes(s, link);
    ASSERT_TRUE(got % 1000 == 0);
    ASSERT_NEAR((double)got, 80000.0 * dt, 80000.0 * 0.15);
    /* The cap stops it. */
    o.cap_bytes = got + 2000;
    ASSERT_OK(kagi_device_sim_start(&d, s, link, "loop", &o));
    sleep_ms(300);
    kagi_device_stop(d);
    ASSERT_EQ(kagi_store_pool_bytes(s, link), got + 2000);
    kagi_store_close(s);
}

static void test_pending_ttl_wipes_unfetched_keys(void)
{
    setup();
    char p[512];
    mkpath(p, sizeof p, "ttl.db");
    unlink(p);
    kagi_store_opts o = {.unit_bytes = 32, .pending_ttl_s = 1};
    kagi_store *s = NULL;
    ASSERT_OK(kagi_store_open(&s, p, akey, &o));
    if (!s) return;
    uint32_t link;
    ASSERT_OK(kagi_store_link(s, "loop", &link));
    uint8_t blk[64];
    fill(blk, sizeof blk, 8);
    ASSERT_EQ(add_block(s, link, 1, blk, sizeof blk), KAGI_STORE_DONE);
    kagi_store_op a, b;
    ASSERT_EQ(issue(s, link, 1, 32, "A", "B", NULL, &a), KAGI_STORE_DONE);
    ASSERT_EQ(kagi_store_pending_count(s), 1);
    sleep_ms(2600);
    ASSERT_EQ(kagi_store_pending_count(s), 0);
    ASSERT_EQ(fetch(s, "A", "B", (const uint8_t(*)[16])a.keys[0].id, 1, &b), KAGI_STORE_BAD_ID);
    kagi_store_op_clear(&a);
    kagi_store_close(s);
}

/* The scratch folder goes whichever tests ran (a filter may skip some). */
static void cleanup(void)
{
    if (!dir[0]) return;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
}

int main(int argc, char **argv)
{
    for (int i = 0; i < 32; i++) akey[i] = (uint8_t)(i * 37 + 1);
    atexit(cleanup);
    static const t_case cases[] = {
        T(test_store_key_file_rules),
        T(test_issue_then_fetch_returns_the_device_bytes_once),
        T(test_multi_slave_each_once_then_gone),
        T(test_reopen_keeps_pool_and_issued_keys),
        T(test_wrong_at_rest_key_is_refused),
        T(test_tampered_rows_are_detected),
        T(test_group_commit_batches_concurrent_requests),
        T(test_paced_group_commit_batches_concurrent_requests),
        T(test_commit_gap_rule),
        T(test_idmap_insert_delete),
        T(test_uuid_parse_and_format),
        T(test_directory_device_ingests_and_removes_files),
        T(test_block_parse_names_the_field),
        T(test_simulated_device_fills_at_its_rate),
        T(test_pending_ttl_wipes_unfetched_keys),
        T(test_two_ends_agree_on_keys_by_position),
        T(test_checkpointer_backfills_the_database),
        T(test_read_ahead_front_keeps_the_stream),
        {NULL, NULL},
    };
    return t_run(cases, argc, argv);
}
