/* Message channels: in-memory queues and TCP, with Wegman-Carter tags.
 * Wire format of one message: u32 header (little endian: length in the low
 * 31 bits, bit 31 set when a tag follows), payload, then the 16-byte tag.
 * A tag covers its message and every untagged message before it since the
 * previous tag (kagi_mac_absorb); untagged messages are accepted only while
 * the receiver defers tags too. */
#define _GNU_SOURCE
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "kagi/channel.h"

typedef struct kagi__msg {
    struct kagi__msg *next;
    size_t len;
    uint8_t data[];
} kagi__msg;

/* One direction of an in-memory pair. */
typedef struct kagi__queue {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    kagi__msg *head, *tail;
    _Atomic int closed; /* read without the lock while spinning */
    int refs;
    _Atomic size_t pushed; /* read without the lock while spinning */
} kagi__queue;

struct kagi_channel {
    int fd;                       /* TCP socket, or -1 */
    kagi__queue *in, *out;        /* in-memory pair */
    kagi_mac *send_mac, *recv_mac;
    int broken, tamper, defer;
    size_t messages, received;
    size_t popped; /* messages taken from the in-memory queue */
};

static void kagi__queue_unref(kagi__queue *q)
{
    pthread_mutex_lock(&q->mu);
    int last = --q->refs == 0;
    q->closed = 1;
    pthread_cond_broadcast(&q->cv);
    pthread_mutex_unlock(&q->mu);
    if (!last) return;
    for (kagi__msg *m = q->head, *n; m; m = n) {
        n = m->next;
        kagi__wipe(m->data, m->len);
        free(m);
    }
    pthread_mutex_destroy(&q->mu);
    pthread_cond_destroy(&q->cv);
    free(q);
}

static kagi__queue *kagi__queue_new(void)
{
    kagi__queue *q = calloc(1, sizeof *q);
    if (!q) return NULL;
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->cv, NULL);
    q->refs = 2;
    return q;
}

int kagi_channel_pair(kagi_channel **a, kagi_channel **b)
{
    *a = calloc(1, sizeof **a);
    *b = calloc(1, sizeof **b);
    kagi__queue *ab = kagi__queue_new(), *ba = kagi__queue_new();
    if (!*a || !*b || !ab || !ba) {
        free(*a);
        free(*b);
        free(ab);
        free(ba);
        *a = *b = NULL;
        return kagi__err(KAGI_ERR_NOMEM, "out of memory");
    }
    (*a)->fd = (*b)->fd = -1;
    (*a)->out = (*b)->in = ab;
    (*a)->in = (*b)->out = ba;
    return KAGI_OK;
}

void kagi_channel_free(kagi_channel *ch)
{
    if (!ch) return;
    if (ch->fd >= 0) close(ch->fd);
    if (ch->in) kagi__queue_unref(ch->in);
    if (ch->out) kagi__queue_unref(ch->out);
    kagi_mac_free(ch->send_mac);
    kagi_mac_free(ch->recv_mac);
    free(ch);
}

static int kagi__split_hostport(const char *hp, char *host, size_t hl, const char **port)
{
    const char *c = strrchr(hp, ':');
    KAGI__FAIL_IF(!c || c == hp || !c[1], KAGI_ERR_ARG, "'%s' is not HOST:PORT", hp);
    size_t n = (size_t)(c - hp);
    if (hp[0] == '[' && n >= 2 && hp[n - 1] == ']') { /* [::1]:port */
        hp++;
        n -= 2;
    }
    KAGI__FAIL_IF(n >= hl, KAGI_ERR_ARG, "host name in '%s' is too long", hp);
    memcpy(host, hp, n);
    host[n] = 0;
    *port = c + 1;
    return KAGI_OK;
}

static void kagi__sock_opts(int fd, int timeout_s)
{
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct timeval tv = {.tv_sec = timeout_s, .tv_usec = 0};
    (void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    (void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

static kagi_channel *kagi__tcp_wrap(int fd)
{
    kagi_channel *ch = calloc(1, sizeof *ch);
    if (ch) ch->fd = fd;
    return ch;
}

int kagi_channel_tcp_listen(const char *hostport, int timeout_s, kagi_channel **out)
{
    *out = NULL;
    char host[256];
    const char *port;
    KAGI__TRY(kagi__split_hostport(hostport, host, sizeof host, &port));
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE}, *res;
    int g = getaddrinfo(host, port, &hints, &res);
    KAGI__FAIL_IF(g != 0, KAGI_ERR_NET, "%s: %s", hostport, gai_strerror(g));
    int lfd = socket(res->ai_family, res->ai_socktype | SOCK_CLOEXEC, res->ai_protocol);
    int one = 1;
    if (lfd >= 0) (void)setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (lfd < 0 || bind(lfd, res->ai_addr, res->ai_addrlen) != 0 || listen(lfd, 1) != 0) {
        int e = errno;
        if (lfd >= 0) close(lfd);
        freeaddrinfo(res);
        return kagi__err(KAGI_ERR_NET, "cannot listen on %s: %s", hostport, strerror(e));
    }
    freeaddrinfo(res);
    struct timeval tv = {.tv_sec = timeout_s, .tv_usec = 0};
    (void)setsockopt(lfd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    int e = errno;
    close(lfd);
    KAGI__FAIL_IF(fd < 0, KAGI_ERR_NET, "no peer connected to %s: %s", hostport,
                  e == EAGAIN ? "timed out" : strerror(e));
    kagi__sock_opts(fd, timeout_s);
    *out = kagi__tcp_wrap(fd);
    if (!*out) {
        close(fd);
        return kagi__err(KAGI_ERR_NOMEM, "out of memory");
    }
    return KAGI_OK;
}

int kagi_channel_tcp_connect(const char *hostport, int timeout_s, kagi_channel **out)
{
    *out = NULL;
    char host[256];
    const char *port;
    KAGI__TRY(kagi__split_hostport(hostport, host, sizeof host, &port));
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res;
    int g = getaddrinfo(host, port, &hints, &res);
    KAGI__FAIL_IF(g != 0, KAGI_ERR_NET, "%s: %s", hostport, gai_strerror(g));
    time_t until = time(NULL) + timeout_s;
    int fd = -1, e = 0;
    /* The listener may not be up yet: retry until the deadline. */
    for (;;) {
        fd = socket(res->ai_family, res->ai_socktype | SOCK_CLOEXEC, res->ai_protocol);
        if (fd >= 0 && connect(fd, res->ai_addr, res->ai_addrlen) == 0) break;
        e = errno;
        if (fd >= 0) close(fd);
        fd = -1;
        if (time(NULL) >= until || (e != ECONNREFUSED && e != ENOENT)) break;
        struct timespec ts = {0, 100 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    freeaddrinfo(res);
    KAGI__FAIL_IF(fd < 0, KAGI_ERR_NET, "cannot connect to %s: %s", hostport, strerror(e));
    kagi__sock_opts(fd, timeout_s);
    *out = kagi__tcp_wrap(fd);
    if (!*out) {
        close(fd);
        return kagi__err(KAGI_ERR_NOMEM, "out of memory");
    }
    return KAGI_OK;
}

int kagi_channel_auth(kagi_channel *ch, kagi_keypool *send_pool, kagi_keypool *recv_pool)
{
    KAGI__FAIL_IF(ch->send_mac, KAGI_ERR_ARG, "channel is already authenticated");
    KAGI__TRY(kagi_mac_new(&ch->send_mac, send_pool));
    int rc = kagi_mac_new(&ch->recv_mac, recv_pool);
    if (rc) {
        kagi_mac_free(ch->send_mac);
        ch->send_mac = NULL;
    }
    return rc;
}

size_t kagi_channel_auth_bits(const kagi_channel *ch)
{
    return (ch->send_mac ? kagi_mac_bits_consumed(ch->send_mac) : 0) +
           (ch->recv_mac ? kagi_mac_bits_consumed(ch->recv_mac) : 0);
}

size_t kagi_channel_messages(const kagi_channel *ch) { return ch->messages; }

void kagi_channel_tamper_next(kagi_channel *ch) { ch->tamper = 1; }

void kagi_channel_defer_tags(kagi_channel *ch, int on) { ch->defer = on; }

static int kagi__write_all(int fd, const uint8_t *p, size_t len)
{
    while (len) {
        ssize_t w = send(fd, p, len, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        KAGI__FAIL_IF(w <= 0, KAGI_ERR_NET, "send failed: %s",
                      errno == EAGAIN ? "timed out" : strerror(errno));
        p += w;
        len -= (size_t)w;
    }
    return KAGI_OK;
}

static int kagi__read_all(int fd, uint8_t *p, size_t len)
{
    while (len) {
        ssize_t r = recv(fd, p, len, 0);
        if (r < 0 && errno == EINTR) continue;
        KAGI__FAIL_IF(r == 0, KAGI_ERR_NET, "peer closed the connection");
        KAGI__FAIL_IF(r < 0, KAGI_ERR_NET, "receive failed: %s",
                      errno == EAGAIN ? "timed out waiting for the peer" : strerror(errno));
        p += r;
        len -= (size_t)r;
    }
    return KAGI_OK;
}

int kagi_channel_send(kagi_channel *ch, const void *msg, size_t len)
{
    KAGI__FAIL_IF(ch->broken, KAGI_ERR_AUTH, "channel closed after an authentication failure");
    KAGI__FAIL_IF(len > KAGI_CHANNEL_MAX_MSG, KAGI_ERR_ARG, "message of %zu bytes is too large",
                  len);
    size_t tl = ch->send_mac && !ch->defer ? 16 : 0;
    kagi__msg *m = malloc(sizeof *m + 4 + len + tl);
    KAGI__FAIL_IF(!m, KAGI_ERR_NOMEM, "out of memory");
    m->next = NULL;
    m->len = 4 + len + tl;
    uint8_t *d = m->data;
    d[0] = (uint8_t)len;
    d[1] = (uint8_t)(len >> 8);
    d[2] = (uint8_t)(len >> 16);
    d[3] = (uint8_t)((len >> 24) | (tl ? 0x80 : 0));
    if (len) memcpy(d + 4, msg, len);
    int rc = KAGI_OK;
    if (tl) rc = kagi_mac_tag(ch->send_mac, d + 4, len, d + 4 + len);
    else if (ch->send_mac) rc = kagi_mac_absorb(ch->send_mac, d + 4, len);
    if (!rc && ch->tamper) {
        d[len ? 4 + len / 2 : 4] ^= 0x10; /* a bit flipped on the wire */
        ch->tamper = 0;
    }
    if (!rc && ch->fd >= 0) rc = kagi__write_all(ch->fd, d, m->len);
    if (rc || ch->fd >= 0) {
        kagi__wipe(m->data, m->len);
        free(m);
        if (!rc) ch->messages++;
        return rc;
    }
    kagi__queue *q = ch->out;
    pthread_mutex_lock(&q->mu);
    if (q->closed) {
        pthread_mutex_unlock(&q->mu);
        kagi__wipe(m->data, m->len);
        free(m);
        return kagi__err(KAGI_ERR_NET, "peer closed the channel");
    }
    if (q->tail) q->tail->next = m;
    else q->head = m;
    q->tail = m;
    atomic_fetch_add(&q->pushed, 1);
    pthread_cond_signal(&q->cv);
    pthread_mutex_unlock(&q->mu);
    ch->messages++;
    return KAGI_OK;
}

int kagi_channel_recv(kagi_channel *ch, kagi_buf *buf)
{
    kagi_buf_reset(buf);
    KAGI__FAIL_IF(ch->broken, KAGI_ERR_AUTH, "channel closed after an authentication failure");
    size_t tl = 0;
    uint8_t tag[16];
    if (ch->fd >= 0) {
        uint8_t h[4];
        KAGI__TRY(kagi__read_all(ch->fd, h, 4));
        tl = h[3] & 0x80 ? 16 : 0;
        size_t len = (size_t)h[0] | (size_t)h[1] << 8 | (size_t)h[2] << 16 | (size_t)(h[3] & 0x7f) << 24;
        KAGI__FAIL_IF(len > KAGI_CHANNEL_MAX_MSG, KAGI_ERR_PROTO,
                      "peer announced a message of %zu bytes (cap %zu)", len, KAGI_CHANNEL_MAX_MSG);
        uint8_t *d = kagi_buf_grow(buf, len);
        if (!d && len) return buf->err;
        KAGI__TRY(kagi__read_all(ch->fd, d, len));
        if (tl) KAGI__TRY(kagi__read_all(ch->fd, tag, tl));
    } else {
        kagi__queue *q = ch->in;
        /* The peer usually answers within microseconds, and a futex sleep
         * and wake-up cost more than that: spin a little, then yield (so a
         * peer sharing this core can run), and only then sleep. */
        for (int i = 0; i < 2048 && atomic_load(&q->pushed) == ch->popped && !q->closed; i++) {
            if (i < 64) __builtin_ia32_pause();
            else sched_yield();
        }
        pthread_mutex_lock(&q->mu);
        while (!q->head && !q->closed) pthread_cond_wait(&q->cv, &q->mu);
        kagi__msg *m = q->head;
        if (m) {
            q->head = m->next;
            if (!q->head) q->tail = NULL;
            ch->popped++;
        }
        pthread_mutex_unlock(&q->mu);
        KAGI__FAIL_IF(!m, KAGI_ERR_NET, "peer closed the channel");
        tl = m->data[3] & 0x80 ? 16 : 0;
        size_t len = m->len - 4 - tl;
        kagi_buf_put(buf, m->data + 4, len);
        if (tl) memcpy(tag, m->data + 4 + len, tl);
        kagi__wipe(m->data, m->len);
        free(m);
        if (buf->err) return buf->err;
    }
    if (!ch->recv_mac) {
        KAGI__FAIL_IF(tl, KAGI_ERR_PROTO, "peer sent a tag on an unauthenticated channel");
        return KAGI_OK;
    }
    int rc;
    if (tl) {
        rc = kagi_mac_check(ch->recv_mac, buf->p, buf->len, tag);
    } else if (ch->defer) {
        rc = kagi_mac_absorb(ch->recv_mac, buf->p, buf->len);
    } else {
        rc = kagi__err(KAGI_ERR_AUTH, "message %zu arrived without the tag it needs",
                       ch->received + 1);
    }
    if (rc) {
        ch->broken = 1;
        kagi_buf_reset(buf);
        return rc;
    }
    ch->received++;
    return KAGI_OK;
}
