/* What the KME's server (kme.c) and its peer relay (relay.c) share. */
#ifndef KAGI_NET_INTERNAL_H
#define KAGI_NET_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include <openssl/ssl.h>

#include "kagi/kme.h"

typedef struct kagi__kme kagi__kme;
typedef struct kagi__worker kagi__worker;
typedef struct kagi__call kagi__call;
typedef struct kagi__conn kagi__conn;
typedef struct kagi__pconn kagi__pconn;

/* One request in flight: in the store, or with a relay thread. */
struct kagi__call {
    kagi_store_op op;             /* first: a finished op is its call */
    kagi__kme *k;
    kagi__worker *w;
    kagi__conn *conn;
    kagi_etsi_req r;
    char caller[KAGI_SAE_ID_MAX + 1];
    double t0;
    kagi__call *next;
    /* enc_keys for SAEs at another KME: the KMEs on the way (the last
       holds the slaves) and the link to the first */
    char path[KAGI_ROUTE_MAX][KAGI_SAE_ID_MAX + 1];
    unsigned n_path;
    long first_link;
    /* a peer message (peer != 0): the body, the sender, and the answer */
    int peer;
    uint8_t *pbody;
    size_t plen;
    char from[KAGI_SAE_ID_MAX + 1];
    int pstatus;
    unsigned pkeys;
    char pmsg[256];
    int64_t pfront_block;         /* refused as behind: the receiver's front */
    uint32_t pfront_off;          /* (-1 block: not that case) */
};

/* Kept-alive client connections to the KME at the far end of a link, and
 * the lock that keeps this KME's messages over the link in the order of
 * their positions (held from taking the key to the peer's answer). */
typedef struct kagi__peer {
    pthread_mutex_t mu;
    kagi__pconn *idle;
    pthread_mutex_t send;
} kagi__peer;

struct kagi__kme {
    const kagi_kme_config *c;
    kagi_store *store;
    SSL_CTX *ctx;                 /* server */
    SSL_CTX *cctx;                /* client, to peers */
    kagi__worker *workers;
    unsigned n_workers;
    kagi_device **devs;
    /* per configured link: the store link the device feeds (a block's first
       half for a link to another KME), and the store links of the two
       directions: out (this KME spends it) and in (the peer does); all
       three the same for a loopback link */
    uint32_t *link_ids, *out_ids, *in_ids;
    kagi__peer *peers;
    kagi_etsi_limits lim;
    atomic_int draining;
    atomic_long inflight;
    atomic_int relays;            /* relay threads running */
    unsigned port;
};

/* Hand a finished call back to its worker (any thread). */
void kagi__op_done(kagi_store_op *op);
/* The first link of the configuration whose peer is KME kme, or -1. */
long kagi__link_to(const kagi_kme_config *cfg, const char *kme);

/* relay.c: the client side of the peer protocol and its threads. */
int kagi__relay_init(kagi__kme *k) KAGI_NODISCARD;
void kagi__relay_free(kagi__kme *k);
/* Run a call on a relay thread: an enc_keys whose slaves are at another KME
 * (c->op prepared as an ISSUE from the first link's out direction with no
 * slaves here), or a peer message (c->peer). Finishes with kagi__op_done.
 * KAGI_ERR_EXHAUSTED when too many relays run already. */
int kagi__relay_start(kagi__call *c) KAGI_NODISCARD;

#endif
