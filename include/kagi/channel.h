/* kagi/channel.h: the classical channel between Alice and Bob.
 *
 * A channel carries whole messages in order. Two transports exist: an
 * in-memory queue pair (both parties in one process, one thread each) and
 * TCP (two processes). Once kagi_channel_auth() is called, every message
 * is authenticated by a Wegman-Carter tag: a polynomial hash keyed by
 * secret bits, encrypted with 128 fresh secret bits, one pool per
 * direction; a tag covers its own message and any sent untagged before it
 * (kagi_channel_defer_tags). A message
 * whose tag fails is an error (KAGI_ERR_AUTH) and the channel refuses any
 * further traffic. */
#ifndef KAGI_CHANNEL_H
#define KAGI_CHANNEL_H

#include <stddef.h>
#include <stdint.h>

#include "kagi/auth.h"
#include "kagi/buf.h"

typedef struct kagi_channel kagi_channel;

/* Largest message accepted from a peer (a Toeplitz seed for 10^8 bits is
 * 25 MB). */
#define KAGI_CHANNEL_MAX_MSG ((size_t)256 << 20)

/* Two connected ends of an in-memory queue. */
int kagi_channel_pair(kagi_channel **a, kagi_channel **b) KAGI_NODISCARD KAGI_NONNULL(1, 2);
/* TCP: wait for one peer on HOST:PORT, or connect to it (retrying for up
 * to timeout_s seconds while the listener starts). Reads time out after
 * timeout_s seconds of silence. */
int kagi_channel_tcp_listen(const char *hostport, int timeout_s, kagi_channel **out)
    KAGI_NODISCARD KAGI_NONNULL(1, 3);
int kagi_channel_tcp_connect(const char *hostport, int timeout_s, kagi_channel **out)
    KAGI_NODISCARD KAGI_NONNULL(1, 3);
void kagi_channel_free(kagi_channel *ch);

/* Authenticate every later message: tags on send from send_pool, checks
 * on receive from recv_pool (the peer's send pool). Pools are borrowed. */
int kagi_channel_auth(kagi_channel *ch, kagi_keypool *send_pool, kagi_keypool *recv_pool)
    KAGI_NODISCARD KAGI_NONNULL(1, 2, 3);
int kagi_channel_send(kagi_channel *ch, const void *msg, size_t len) KAGI_NODISCARD KAGI_NONNULL(1);
/* Receive the next message into buf (reset first). */
int kagi_channel_recv(kagi_channel *ch, kagi_buf *buf) KAGI_NODISCARD KAGI_NONNULL(1, 2);
/* While on, messages sent go without a tag of their own and untagged
 * messages are accepted; the next tagged message in each direction covers
 * them all (kagi_mac_absorb). For long request/answer exchanges such as
 * Cascade, where one tag per message would spend more key than the
 * exchange is worth; both ends must turn it off before acting on what the
 * exchange decided, so that a tag has covered it. */
void kagi_channel_defer_tags(kagi_channel *ch, int on) KAGI_NONNULL(1);
/* Secret bits spent on tags and hash keys, both directions. */
size_t kagi_channel_auth_bits(const kagi_channel *ch) KAGI_NONNULL(1);
size_t kagi_channel_messages(const kagi_channel *ch) KAGI_NONNULL(1);
/* Test hook: flip one bit of the next message after it has been tagged,
 * as an attacker on the wire would. */
void kagi_channel_tamper_next(kagi_channel *ch);

#endif
