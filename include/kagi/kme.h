/* kagi/kme.h: the key-management entity daemon: configuration, the ETSI
 * GS QKD 014 v1.1.1 request parser, and the server.
 *
 * One KME serves the SAEs attached to its node over HTTPS with mutual
 * TLS; an SAE is identified by its certificate's subject CN. Keys come
 * from the store of kagi/kms.h. docs/kme.md describes the daemon and its
 * configuration; docs/etsi014.md the API as implemented, message by
 * message. */
#ifndef KAGI_KME_H
#define KAGI_KME_H

#include <stddef.h>
#include <stdint.h>

#include "kagi/bits.h"
#include "kagi/keyrate.h"
#include "kagi/kms.h"

/* ---- configuration ---- */

typedef enum kagi_kme_source {
    KAGI_SOURCE_NONE = 0, /* no device: the link's pools stay as stored */
    KAGI_SOURCE_SIM,      /* simulated device driven by the link model */
    KAGI_SOURCE_DIR,      /* directory of block files from QKD hardware */
} kagi_kme_source;

typedef struct kagi_kme_link_cfg {
    char name[KAGI_LINK_NAME_MAX + 1];
    char peer[KAGI_SAE_ID_MAX + 1];   /* KME at the far end; this KME's id for a
                                         loopback link (both ends here) */
    kagi_kme_source source;
    /* sim */
    kagi_protocol protocol;
    kagi_link model;                  /* kagi_link_defaults, then the file's values */
    double finite_block;              /* n for the finite-key rate; 0 asymptotic */
    double rate_bps;                  /* > 0: this rate instead of the model's */
    double speedup;                   /* times faster than real time */
    size_t block_bytes;
    /* dir */
    char dir[4096];
    unsigned poll_ms;
    /* the peer KME's API address, for the peer protocol (docs/peer.md);
       required when peer is another KME */
    char peer_host[256];
    unsigned peer_port;
} kagi_kme_link_cfg;

#define KAGI_ROUTE_MAX 16   /* hops of a relay path at most */

/* "route = DEST via HOP1,...,DEST": the KMEs a key for SAEs at DEST goes
 * through, this KME excluded; hops[0] is a neighbour (a link's peer). */
typedef struct kagi_kme_route_cfg {
    char dest[KAGI_SAE_ID_MAX + 1];
    char hops[KAGI_ROUTE_MAX][KAGI_SAE_ID_MAX + 1];
    unsigned n_hops;
} kagi_kme_route_cfg;

typedef struct kagi_kme_sae_cfg {
    char id[KAGI_SAE_ID_MAX + 1];
    char kme[KAGI_SAE_ID_MAX + 1];    /* the KME it is attached to */
} kagi_kme_sae_cfg;

typedef struct kagi_kme_config {
    char kme_id[KAGI_SAE_ID_MAX + 1];
    char listen_host[256];
    unsigned port;                    /* 0: any free port (logged, ready_file) */
    char cert[4096], key[4096], client_ca[4096];
    char store[4096], store_key[4096];
    char log[4096];                   /* "" or "-": stderr */
    char ready_file[4096];            /* written "HOST:PORT\n" once serving */
    int log_level;                    /* 0 error .. 3 debug */
    unsigned key_size, min_key_size, max_key_size;   /* bits, multiples of 8 */
    unsigned max_keys_per_request, max_sae_id_count;
    uint64_t max_key_count;           /* pool cap per link, in keys of key_size */
    size_t body_limit;                /* request body cap, bytes */
    size_t header_limit;              /* request line and headers cap, bytes */
    unsigned timeout_s;               /* idle or slow client: closed after this */
    unsigned max_connections;
    unsigned workers;                 /* event-loop threads */
    unsigned commit_interval_us;      /* group commit window (kagi_store_opts) */
    int commit_pacing;                /* "auto": kagi_store_opts.pace_fsyncs */
    unsigned pending_ttl_s;
    kagi_kme_sae_cfg *saes;
    size_t n_saes;
    kagi_kme_link_cfg *links;
    size_t n_links;
    kagi_kme_route_cfg *routes;
    size_t n_routes;
} kagi_kme_config;

/* Parse a configuration file (format in docs/kme.md: "key = value" lines,
 * "#" comments, "[link NAME]" sections). KAGI_ERR_FORMAT or KAGI_ERR_ARG
 * with a detail naming the file, line and key. Paths are taken as written
 * (relative ones against the working directory). *out is freed with
 * kagi_kme_config_free. */
int kagi_kme_config_load(const char *path, kagi_kme_config **out) KAGI_NODISCARD KAGI_NONNULL(1, 2);
int kagi_kme_config_parse(const char *text, size_t len, const char *name, kagi_kme_config **out)
    KAGI_NODISCARD KAGI_NONNULL(1, 3, 4);
void kagi_kme_config_free(kagi_kme_config *c);
/* The SAE with this id, or NULL. */
const kagi_kme_sae_cfg *kagi_kme_config_sae(const kagi_kme_config *c, const char *id, size_t len)
    KAGI_NONNULL(1, 2);
/* The key rate a link's simulated device runs at, bits/s (before speedup). */
int kagi_kme_link_rate(const kagi_kme_link_cfg *l, double *bps) KAGI_NODISCARD KAGI_NONNULL(1, 2);

/* ---- ETSI GS QKD 014 requests ---- */

typedef enum kagi_etsi_call {
    KAGI_ETSI_STATUS = 1, /* GET  /api/v1/keys/{slave_SAE_ID}/status */
    KAGI_ETSI_ENC_KEYS,   /* GET|POST /api/v1/keys/{slave_SAE_ID}/enc_keys */
    KAGI_ETSI_DEC_KEYS,   /* GET|POST /api/v1/keys/{master_SAE_ID}/dec_keys */
} kagi_etsi_call;

typedef enum kagi_etsi_method { KAGI_HTTP_GET = 1, KAGI_HTTP_POST = 2, KAGI_HTTP_OTHER = 3 } kagi_etsi_method;

typedef struct kagi_etsi_limits {
    unsigned key_size, min_key_size, max_key_size;   /* bits */
    unsigned max_keys_per_request, max_sae_id_count;
} kagi_etsi_limits;

#define KAGI_ETSI_MAX_IDS 1024   /* key_IDs per dec_keys request at most */

typedef struct kagi_etsi_req {
    kagi_etsi_call call;
    char sae[KAGI_SAE_ID_MAX + 1];    /* from the path: slave (status, enc_keys)
                                         or master (dec_keys) */
    unsigned number;                  /* enc_keys: keys asked for (default 1) */
    unsigned size;                    /* enc_keys: bits each (default key_size) */
    char extra[KAGI_MAX_SLAVES - 1][KAGI_SAE_ID_MAX + 1]; /* additional_slave_SAE_IDs */
    unsigned n_extra;
    uint8_t ids[KAGI_ETSI_MAX_IDS][KAGI_KEY_ID_BYTES];    /* dec_keys: key_IDs */
    unsigned n_ids;
    /* On failure: the HTTP status (400, 404, 405), the message, and for an
       unsupported extension_mandatory the names for "details". */
    int status;
    char message[256];
    char unsupported[8][KAGI_SAE_ID_MAX + 1];
    unsigned n_unsupported;
} kagi_etsi_req;

/* Parse one request: the path (without query), the query string (NULL or
 * "" when absent) and the body. Checks everything that needs no state:
 * method, path, SAE ID syntax (1..64 of [A-Za-z0-9._~-]), parameters and
 * their types, unknown fields, size a multiple of 8 within the limits,
 * number and key_IDs counts, extension_mandatory. Returns 0 with r filled,
 * or the HTTP status (also in r->status) with r->message set. Never reads
 * past the given lengths; allocation bounded by the body. */
int kagi_etsi_parse(kagi_etsi_req *r, kagi_etsi_method method, const char *path, size_t path_len,
                    const char *query, size_t query_len, const uint8_t *body, size_t body_len,
                    const kagi_etsi_limits *lim) KAGI_NONNULL(1, 3, 9);
/* An SAE or KME id as the API accepts it. */
int kagi_etsi_valid_id(const char *s, size_t len);

/* ---- HTTP/1.1 framing ---- */

typedef struct kagi_http_req {
    kagi_etsi_method method;
    const char *target;            /* origin-form, into the buffer */
    size_t target_len, path_len;   /* path = target up to '?' */
    const char *query;             /* after '?', NULL if none */
    size_t query_len;
    const uint8_t *body;           /* Content-Length bytes after the head */
    size_t body_len;
    size_t head_len;               /* request line and headers, CRLFCRLF included */
    size_t total;                  /* head + body: where the next request starts */
    int keep_alive;                /* HTTP/1.1 unless "Connection: close" */
    int expect_continue;
} kagi_http_req;

/* Parse one request from buf[0..len). Returns 0 when complete (r filled),
 * 1 when more bytes are needed (r->head_len set once the head is whole),
 * or an HTTP status for a request refused (400 malformed, 413 body over
 * body_limit, 417, 431 head over header_limit, 501 transfer coding, 505
 * version) with *why a static reason. Strict by design: see
 * docs/etsi014.md. Reads nothing past buf + len. */
int kagi_http_parse(const uint8_t *buf, size_t len, size_t header_limit, size_t body_limit,
                    kagi_http_req *r, const char **why) KAGI_NONNULL(1, 5, 6);

/* ---- the peer protocol between neighbouring KMEs (docs/peer.md) ---- */

#define KAGI_PEER_PATH "/kagi/peer/v1/keys"
#define KAGI_PEER_MAX_KEY_BYTES 8192 /* 65536 bits, the largest max_key_size */
#define KAGI_PEER_MAC_BYTES 32       /* per relayed key: hash key H, then tag pad */
#define KAGI_PEER_BODY_LIMIT (16u << 20)

typedef enum kagi_peer_mode {
    KAGI_PEER_DIRECT = 1, /* the keys are the link's key at the positions given */
    KAGI_PEER_OTP = 2,    /* the keys, one-time padded with the link's key at the
                             positions (size bytes, then KAGI_PEER_MAC_BYTES for
                             the tag); ct and tag carried */
} kagi_peer_mode;

typedef struct kagi_peer_key {
    uint8_t id[KAGI_KEY_ID_BYTES];
    int64_t block;   /* where its link key starts in the sender's direction */
    uint32_t off;    /* of the link (docs/peer.md) */
    uint8_t tag[16]; /* OTP: Wegman-Carter tag */
} kagi_peer_key;

/* One POST KAGI_PEER_PATH body: keys for master and slaves, sent over link
 * by the KME before path[0]; path[0] is the receiver, the last entry the
 * slaves' KME. */
typedef struct kagi_peer_msg {
    kagi_peer_mode mode;
    char link[KAGI_LINK_NAME_MAX + 1];
    char master[KAGI_SAE_ID_MAX + 1];
    char slaves[KAGI_MAX_SLAVES][KAGI_SAE_ID_MAX + 1];
    unsigned n_slaves;
    char path[KAGI_ROUTE_MAX][KAGI_SAE_ID_MAX + 1];
    unsigned n_path;
    size_t size;              /* bytes per key, 1..KAGI_PEER_MAX_KEY_BYTES */
    kagi_peer_key *keys;      /* n_keys, in ascending stream position */
    unsigned n_keys;
    uint8_t *ct;              /* OTP: n_keys * size bytes of ciphertext */
    char message[160];        /* why parsing failed */
} kagi_peer_msg;

/* Parse a body strictly (unknown fields, bad ids, key_IDs twice, positions
 * out of order, base64 of another length: KAGI_ERR_FORMAT with m->message
 * naming the field). m is cleared first; free with kagi_peer_msg_clear. */
int kagi_peer_parse(kagi_peer_msg *m, const uint8_t *body, size_t len) KAGI_NODISCARD KAGI_NONNULL(1, 2);
/* Serialise; *out is freed with free(). */
int kagi_peer_write(const kagi_peer_msg *m, char **out, size_t *len) KAGI_NODISCARD KAGI_NONNULL(1, 2, 3);
/* Wipe the ciphertext and free; the message can be reused. */
void kagi_peer_msg_clear(kagi_peer_msg *m) KAGI_NONNULL(1);
/* Key i's tag: poly_H over GF(2^128) (kagi/auth.h) of its key_ID, the
 * link, master, slaves, path, size and ciphertext, XOR a one-time pad;
 * mac_key is H then the pad, fresh link key for every key. */
void kagi_peer_tag(const kagi_peer_msg *m, unsigned i, const uint8_t mac_key[KAGI_PEER_MAC_BYTES],
                   uint8_t tag[16]) KAGI_NONNULL(1, 3, 4);
/* 1 when keys[i].tag is right (compared in constant time). */
int kagi_peer_tag_ok(const kagi_peer_msg *m, unsigned i, const uint8_t mac_key[KAGI_PEER_MAC_BYTES])
    KAGI_NONNULL(1, 3);

/* ---- the daemon ---- */

/* Run a KME until SIGTERM or SIGINT: opens the store (refusing an at-rest
 * key file that is not 0600 and owned by this user), starts the key
 * sources, serves ETSI 014 over mutual TLS, then shuts down cleanly
 * (answers in flight, checkpoint). Turns core dumps off for the process.
 * Returns KAGI_OK after a clean shutdown. */
int kagi_kme_run(const kagi_kme_config *c) KAGI_NODISCARD KAGI_NONNULL(1);

/* ---- a throwaway PKI for tests, benchmarks and testbeds ---- */

/* Write dir/ca.pem and dir/ca.key (a new self-signed P-256 CA named
 * ca_name) unless they exist, then dir/NAME.pem and dir/NAME.key for each
 * name: a certificate with CN=NAME signed by that CA, valid for a day
 * back and ten years on, with subjectAltName DNS:localhost, IP:127.0.0.1
 * and serverAuth+clientAuth usage. Keys are written with mode 0600. */
int kagi_pki_make(const char *dir, const char *ca_name, const char *const *names, size_t n)
    KAGI_NODISCARD KAGI_NONNULL(1, 2);

#endif
