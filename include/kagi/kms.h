/* kagi/kms.h: the durable key store of a key-management entity (KME).
 *
 * A store is one SQLite file in WAL mode. It holds, per link, a pool of
 * key material from that link's QKD device, cut into units of the default
 * key size; and the keys issued to a master SAE that wait for their slave
 * SAEs. Every row is encrypted with AES-256-GCM under a key derived from
 * the at-rest key file, with a nonce unique per row and the row's identity
 * (link, block and offset for pool units; key_ID, master and slaves for
 * issued keys) as associated data, so a row edited, moved or swapped on
 * disk is detected.
 *
 * All changes go through one committer thread: operations submitted from
 * any thread are run in batches, each batch one transaction and one fsync
 * (synchronous=FULL), and an operation's completion callback runs only
 * after its batch is durable. A key therefore leaves the store (as a
 * response the caller is about to send) only once its removal is on disk:
 * after a crash at any point a key is never handed out twice; a key whose
 * removal was committed but whose response was lost is lost, never reused.
 * docs/kme.md has the whole argument. */
#ifndef KAGI_KMS_H
#define KAGI_KMS_H

#include <stddef.h>
#include <stdint.h>

#include "kagi/bits.h"

#define KAGI_STORE_KEY_BYTES 32   /* the at-rest key file: exactly this many raw bytes */
#define KAGI_KEY_ID_BYTES 16      /* a key_ID: a random (version 4) UUID */
#define KAGI_MAX_SLAVES 16        /* slave SAEs of one key: the slave + 15 additional */
#define KAGI_SAE_ID_MAX 64        /* longest SAE or KME id, bytes */
#define KAGI_MAX_BLOCK_BYTES (16u << 20) /* largest block a device may hand in */

/* Read the at-rest key file: a regular file (not a symlink) of exactly
 * KAGI_STORE_KEY_BYTES bytes, owned by the effective user, with no group or
 * other permission bits (0600 or 0400). KAGI_ERR_ARG names what is wrong
 * (owner, mode, length); KAGI_ERR_IO when it cannot be read. key is wiped
 * on failure. */
int kagi_store_key_read(const char *path, uint8_t key[KAGI_STORE_KEY_BYTES])
    KAGI_NODISCARD KAGI_NONNULL(1, 2);
/* Create path (which must not exist) holding a fresh random key, mode 0600. */
int kagi_store_key_new(const char *path) KAGI_NODISCARD KAGI_NONNULL(1);

/* Write a UUID as 36 lowercase characters and a NUL. */
void kagi_uuid_format(const uint8_t id[KAGI_KEY_ID_BYTES], char out[37]) KAGI_NONNULL(1, 2);
/* Parse the canonical 8-4-4-4-12 hex form (either case); KAGI_ERR_FORMAT. */
int kagi_uuid_parse(const char *s, size_t len, uint8_t id[KAGI_KEY_ID_BYTES])
    KAGI_NODISCARD KAGI_NONNULL(1, 3);

typedef struct kagi_store kagi_store;

typedef struct kagi_store_opts {
    size_t unit_bytes;          /* pool unit: the default key size in bytes, 1..4096 */
    unsigned commit_interval_us;/* least time between two commits' starts (0: commit
                                   as soon as the previous one is done); requests
                                   arriving meanwhile join the next batch */
    int pace_fsyncs;            /* nonzero: commits also start at least twice the
                                   recent mean WAL fsync time apart (at most 0.7 ms),
                                   so the disk flushes at most half the time */
    unsigned max_batch;         /* operations per transaction at most (0: 1024) */
    unsigned pending_ttl_s;     /* issued keys no slave fetched within this time are
                                   wiped (0: kept until fetched) */
} kagi_store_opts;

/* Open (creating if needed) the store at path with the at-rest key. A store
 * made with another key is refused with KAGI_ERR_AUTH; a store whose unit
 * size differs from opts->unit_bytes with KAGI_ERR_ARG (key_size is fixed
 * for the life of a store). Starts the committer thread. *out is closed
 * with kagi_store_close. The at-rest key is not kept (only the derived
 * row key, wiped on close). */
int kagi_store_open(kagi_store **out, const char *path, const uint8_t key[KAGI_STORE_KEY_BYTES],
                    const kagi_store_opts *opts) KAGI_NODISCARD KAGI_NONNULL(1, 2, 3, 4);
/* Run every submitted operation, stop the committer, checkpoint and close;
 * accepts NULL. */
void kagi_store_close(kagi_store *s);

/* The number of a named link (created on first use, kept across restarts). */
int kagi_store_link(kagi_store *s, const char *name, uint32_t *id) KAGI_NODISCARD KAGI_NONNULL(1, 2, 3);
/* Bytes of key material in a link's pool, as of the last commit (any
 * thread). */
uint64_t kagi_store_pool_bytes(const kagi_store *s, uint32_t link) KAGI_NONNULL(1);
/* Issued keys waiting for at least one slave (any thread). */
uint64_t kagi_store_pending_count(const kagi_store *s) KAGI_NONNULL(1);
/* Blocks added to link from now on keep their first floor(len/2) bytes in
 * link and put the rest into link second (offsets counted from the start
 * of each half): the two directions of a link between two KMEs, each
 * spent by one end only (docs/peer.md). Not persisted: set it after every
 * open, before any block is added. */
int kagi_store_split(kagi_store *s, uint32_t link, uint32_t second) KAGI_NODISCARD KAGI_NONNULL(1);
/* Highest block id stored for a link, -1 if none (any thread). */
int64_t kagi_store_last_block(const kagi_store *s, uint32_t link) KAGI_NONNULL(1);

typedef struct kagi_store_stats {
    uint64_t commits, ops, max_batch;   /* transactions, operations in them, largest */
    uint64_t fsyncs, fsync_us, fsync_max_us; /* durability barriers and their time */
} kagi_store_stats;
void kagi_store_get_stats(const kagi_store *s, kagi_store_stats *out) KAGI_NONNULL(1, 2);

/* What an operation asks for. */
typedef enum kagi_store_kind {
    KAGI_STORE_ISSUE = 1, /* enc_keys: take number keys of size_bytes from the
                             link's pool, record them for the slaves, return them */
    KAGI_STORE_FETCH,     /* dec_keys: the keys ids[] issued by master to caller */
    KAGI_STORE_ADD_BLOCK, /* a device's block: into the link's pool */
    KAGI_STORE_TAKE_AT,   /* the peer protocol's receiving end: number keys of
                             size_bytes each from the link's pool at the
                             positions at[] (ascending), dropping the units
                             before each; returns their bytes. size_bytes 0:
                             only drop what lies before at[number - 1] (a
                             sender catching up with its peer) */
    KAGI_STORE_PUT,       /* record number keys (ids[], bytes in put) of
                             size_bytes each for master and slaves, as ISSUE
                             does, with key_IDs and bytes from a peer */
} kagi_store_kind;

/* How it ended (the HTTP status each maps to in brackets). */
typedef enum kagi_store_result {
    KAGI_STORE_DONE = 0,     /* done and durable [200] */
    KAGI_STORE_NO_KEY,       /* not enough key in the pool; nothing taken [503] */
    KAGI_STORE_BAD_ID,       /* a key_ID unknown or already delivered to this
                                caller; a block id not above the last one [400] */
    KAGI_STORE_NOT_NAMED,    /* the key exists but was not issued by this master
                                to this caller [401] */
    KAGI_STORE_FAILED,       /* store error or a row failing authentication
                                (logged); nothing taken [503] */
} kagi_store_result;

typedef struct kagi_store_key {
    uint8_t id[KAGI_KEY_ID_BYTES];
    size_t off, len;          /* the key's bytes: op->material + off, len bytes */
    /* ISSUE: where the key starts in the link's key stream (block id and
       byte offset in it; the key runs on through the following blocks).
       Both ends of a link hold the same blocks, so this names the same
       bytes at the peer: what the peer protocol (docs/kme.md, phase 2)
       sends with the key_ID. */
    int64_t block;
    uint32_t block_off;
} kagi_store_key;

typedef struct kagi_store_op kagi_store_op;
struct kagi_store_op {
    kagi_store_kind kind;
    uint32_t link;            /* ISSUE, ADD_BLOCK */
    /* ISSUE: master and slaves[0..n_slaves) (not copied: must outlive the
       operation); number keys of size_bytes each; n_slaves 0 when the
       slaves are at another KME (the keys go to the peer protocol and no
       pending row is kept here). FETCH: master (from the URL) and caller
       (the slave asking), n_ids key_IDs in ids. PUT: master, slaves, and
       number key_IDs in ids. */
    const char *master;
    const char *slaves[KAGI_MAX_SLAVES];
    unsigned n_slaves;
    unsigned number;
    size_t size_bytes;
    const char *caller;
    const uint8_t (*ids)[KAGI_KEY_ID_BYTES];
    unsigned n_ids;
    /* ADD_BLOCK: block_len bytes (not copied) numbered block_id, which must
       exceed the link's last block id. */
    const uint8_t *block;
    size_t block_len;
    uint64_t block_id;
    /* TAKE_AT: number positions (block and block_off of each). PUT: the
       keys' bytes, number * size_bytes (not copied). */
    const kagi_store_key *at;
    const uint8_t *put;
    /* Filled in before done() is called. */
    kagi_store_result result;
    char msg[192];            /* why, for any result but DONE; no key material */
    int64_t front_block;      /* TAKE_AT refused with BAD_ID: where the pool's */
    uint32_t front_off;       /* front is (-1 block: unknown) */
    kagi_store_key *keys;     /* ISSUE, FETCH: one per key, in request order */
    unsigned n_keys;
    uint8_t *material;        /* the keys' bytes; wiped by kagi_store_op_clear */
    size_t material_len;
    /* Called once, from the committer thread, after the batch is durable
       (or failed). It must not call back into the store synchronously. */
    void (*done)(kagi_store_op *op);
    void *arg;
    kagi_store_op *next;      /* internal queue link */
};

/* Queue op (owned by the caller until done() runs). KAGI_ERR_ARG if the
 * store is closing or op is malformed (done() is then never called). */
int kagi_store_submit(kagi_store *s, kagi_store_op *op) KAGI_NODISCARD KAGI_NONNULL(1, 2);
/* Submit and wait: returns KAGI_OK once op->result is set (op->done is
 * overwritten). */
int kagi_store_run(kagi_store *s, kagi_store_op *op) KAGI_NODISCARD KAGI_NONNULL(1, 2);
/* Wipe and free an operation's outputs; the op can be reused. */
void kagi_store_op_clear(kagi_store_op *op);

/* Block files: how a QKD device hands key to the directory source.
 *   offset 0   8 bytes  magic "KAGIBLK1"
 *          8   8 bytes  block id, unsigned little-endian, below 2^63,
 *                       strictly increasing per link
 *         16   4 bytes  key length L in bytes, little-endian, 1..16 MiB
 *         20  32 bytes  link name, ASCII, NUL-padded
 *         52   L bytes  the key
 * and nothing after. Writers create NAME.tmp and rename it to NAME.key. */
#define KAGI_BLOCK_MAGIC "KAGIBLK1"
#define KAGI_BLOCK_HEADER 52
#define KAGI_LINK_NAME_MAX 31
/* Parse a block file image (len bytes); *key points into buf. KAGI_ERR_FORMAT
 * names the field. */
int kagi_block_parse(const uint8_t *buf, size_t len, char link[KAGI_LINK_NAME_MAX + 1],
                     uint64_t *block_id, const uint8_t **key, size_t *key_len)
    KAGI_NODISCARD KAGI_NONNULL(1, 3, 4, 5, 6);
/* Write a block file atomically (tmp + fsync + rename + fsync of the
 * folder), mode 0600. */
int kagi_block_write(const char *dir, const char *link, uint64_t block_id, const uint8_t *key,
                     size_t len) KAGI_NODISCARD KAGI_NONNULL(1, 2, 4);

/* Key sources: threads that fill a link's pool. */
typedef struct kagi_device kagi_device;

typedef struct kagi_device_sim_opts {
    double bps;            /* secret key rate of the modelled link, bits/s */
    double speedup;        /* run this many times faster than real time (>= 1e-3) */
    size_t block_bytes;    /* key per block */
    uint64_t cap_bytes;    /* stop adding while the pool holds this much */
} kagi_device_sim_opts;

/* A simulated QKD device: blocks of random key at o->bps * o->speedup bits
 * per second (whole blocks, so the first arrives after block_bytes * 8 /
 * (bps * speedup) seconds). */
int kagi_device_sim_start(kagi_device **out, kagi_store *s, uint32_t link, const char *link_name,
                          const kagi_device_sim_opts *o) KAGI_NODISCARD KAGI_NONNULL(1, 2, 4, 5);

/* A directory device: every poll_ms, ingests the *.key block files of dir
 * for this link in name order; each file is removed once its block is
 * durably stored (or was stored before a crash); a malformed file or one
 * for another link is renamed to NAME.bad. Ingestion pauses while the
 * pool holds cap_bytes. */
int kagi_device_dir_start(kagi_device **out, kagi_store *s, uint32_t link, const char *link_name,
                          const char *dir, unsigned poll_ms, uint64_t cap_bytes)
    KAGI_NODISCARD KAGI_NONNULL(1, 2, 4, 5);
/* Stop the thread and free; accepts NULL. */
void kagi_device_stop(kagi_device *d);

/* Scan a directory device's folder once (what its thread does each poll);
 * *stored counts the blocks added. For tests and one-shot ingestion. */
int kagi_device_dir_scan(kagi_store *s, uint32_t link, const char *link_name, const char *dir,
                         uint64_t cap_bytes, unsigned *stored) KAGI_NODISCARD KAGI_NONNULL(1, 3, 4);

#endif
