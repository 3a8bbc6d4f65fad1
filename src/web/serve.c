/* The dashboard's HTTP server (kagi/serve.h): plain HTTP/1.1, GET only,
 * one thread over poll(2), requests parsed by the KME's strict parser
 * (kagi_http_parse). It is a viewer's server, not the KME's: no TLS, no
 * secrets, loopback by default. Every client has a capped input buffer
 * (the head limit), a deadline for a request to complete or output to
 * drain, and the number of clients is capped. */
#define _GNU_SOURCE /* readlink of /proc/self/exe, SOCK_CLOEXEC */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "internal.h"
#include "kagi/kme.h"
#include "kagi/serve.h"

#define KAGI__OUT_LIMIT ((size_t)256 << 20) /* one response at most */
#define KAGI__FILE_MAX ((size_t)16 << 20)   /* a static file at most */
#define KAGI__HEARTBEAT_S 15.0              /* an SSE comment keeps idle streams open */

typedef struct kagi__conn {
    int fd;                   /* -1: free slot */
    uint8_t *in;              /* header_limit + 1 bytes */
    size_t in_len;
    kagi_buf out;             /* bytes to send from out_off */
    size_t out_off;
    double deadline;          /* request complete or output drained by then */
    double last_write;
    int stream;               /* an /api/stream client */
    int stale;                /* stream: a newer state waits for the buffer to drain */
    int close_after;          /* close once out is sent */
} kagi__conn;

struct kagi_serve {
    int lfd;
    kagi_serve_opts o;
    char web[PATH_MAX];       /* "" without static files */
    char url[300];
    int loopback;
    kagi__conn *c;
    size_t nc;
    struct pollfd *pfd;
    char *state;              /* the current state JSON */
    size_t state_len;
};

/* ---- small pieces ---------------------------------------------------------- */

int kagi_serve_resolve(const char *root, const char *path, size_t len, char *out, size_t cap)
{
    KAGI__FAIL_IF(!len || path[0] != '/', KAGI_ERR_ARG, "path must start with '/'");
    if (len == 1) {
        path = "/index.html";
        len = strlen(path);
    }
    for (size_t i = 0; i < len; i++) {
        char c = path[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '.' || c == '_' || c == '-' || c == '/';
        KAGI__FAIL_IF(!ok, KAGI_ERR_ARG, "path holds a character outside A-Z a-z 0-9 . _ - /");
        /* every segment starts after a '/': none may be empty or start with '.' */
        if (c == '/')
            KAGI__FAIL_IF(i + 1 < len && (path[i + 1] == '/' || path[i + 1] == '.'), KAGI_ERR_ARG,
                          "path has an empty segment or one starting with '.'");
    }
    KAGI__FAIL_IF(path[len - 1] == '/', KAGI_ERR_ARG, "path names a folder");
    int n = snprintf(out, cap, "%s%.*s", root, (int)len, path);
    KAGI__FAIL_IF(n < 0 || (size_t)n >= cap, KAGI_ERR_ARG, "path too long");
    return KAGI_OK;
}

const char *kagi_serve_type(const char *name)
{
    static const struct { const char *ext, *type; } t[] = {
        {".html", "text/html; charset=utf-8"}, {".js", "text/javascript; charset=utf-8"},
        {".css", "text/css; charset=utf-8"},   {".json", "application/json"},
        {".svg", "image/svg+xml"},             {".png", "image/png"},
        {".ico", "image/x-icon"},              {".txt", "text/plain; charset=utf-8"},
        {".md", "text/plain; charset=utf-8"},
    };
    const char *dot = strrchr(name, '.'), *slash = strrchr(name, '/');
    if (dot && (!slash || dot > slash))
        for (size_t i = 0; i < sizeof t / sizeof *t; i++)
            if (!strcmp(dot, t[i].ext)) return t[i].type;
    return "application/octet-stream";
}

void kagi_sse_frame(kagi_buf *b, const char *event, const char *data, size_t len)
{
    kagi_buf_put(b, "event: ", 7);
    kagi_buf_put(b, event, strlen(event));
    kagi_buf_put(b, "\n", 1);
    size_t i = 0;
    do { /* an empty payload is still one empty data line */
        size_t j = i;
        while (j < len && data[j] != '\n') j++;
        kagi_buf_put(b, "data: ", 6);
        for (size_t k = i; k < j; k++)
            if (data[k] != '\r') kagi_buf_put(b, &data[k], 1);
        kagi_buf_put(b, "\n", 1);
        i = j + 1;
    } while (i < len);
    kagi_buf_put(b, "\n", 1);
}

static int kagi__has_index(const char *dir)
{
    char p[PATH_MAX];
    struct stat st;
    return snprintf(p, sizeof p, "%s/index.html", dir) < (int)sizeof p && stat(p, &st) == 0 &&
           S_ISREG(st.st_mode);
}

int kagi_serve_find_web(const char *dir, char *out, size_t cap)
{
    KAGI__FAIL_IF(cap < PATH_MAX, KAGI_ERR_ARG, "web folder: out holds %zu bytes, less than "
                  "PATH_MAX", cap);
    const char *env = getenv("KAGI_WEB");
    const char *given = dir ? dir : env && *env ? env : NULL;
    if (given) {
        KAGI__FAIL_IF(!kagi__has_index(given), KAGI_ERR_IO, "%s: no index.html there (%s)", given,
                      dir ? "--web" : "KAGI_WEB");
        if (!realpath(given, out)) snprintf(out, cap, "%s", given);
        return KAGI_OK;
    }
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    KAGI__FAIL_IF(n <= 0, KAGI_ERR_IO, "cannot find the dashboard's files: give --web DIR "
                  "(or KAGI_WEB)");
    exe[n] = 0;
    char *slash = strrchr(exe, '/');
    if (slash) *slash = 0;
    const char *rel[] = {"/../web", "/../share/kagi/web"};
    for (size_t i = 0; i < 2; i++) {
        char p[PATH_MAX];
        if (snprintf(p, sizeof p, "%s%s", exe, rel[i]) >= (int)sizeof p || !kagi__has_index(p))
            continue;
        if (!realpath(p, out)) continue;
        return KAGI_OK;
    }
    return kagi__err(KAGI_ERR_IO, "cannot find the dashboard's files in %s/../web or "
                     "%s/../share/kagi/web: give --web DIR (or KAGI_WEB)", exe, exe);
}

/* ---- set-up ------------------------------------------------------------------ */

/* "HOST:PORT" or "[V6]:PORT" into host and port. */
static int kagi__split(const char *a, char *host, size_t hcap, char *port, size_t pcap)
{
    const char *colon;
    if (a[0] == '[') {
        const char *e = strchr(a, ']');
        KAGI__FAIL_IF(!e || e[1] != ':', KAGI_ERR_ARG, "'%s': expected [ADDRESS]:PORT", a);
        KAGI__FAIL_IF((size_t)(e - a - 1) >= hcap, KAGI_ERR_ARG, "'%s': address too long", a);
        memcpy(host, a + 1, (size_t)(e - a - 1));
        host[e - a - 1] = 0;
        colon = e + 1;
    } else {
        colon = strrchr(a, ':');
        KAGI__FAIL_IF(!colon || colon == a, KAGI_ERR_ARG, "'%s': expected ADDRESS:PORT", a);
        KAGI__FAIL_IF((size_t)(colon - a) >= hcap, KAGI_ERR_ARG, "'%s': address too long", a);
        memcpy(host, a, (size_t)(colon - a));
        host[colon - a] = 0;
    }
    const char *p = colon + 1;
    size_t pl = strlen(p);
    KAGI__FAIL_IF(!pl || pl >= pcap || strspn(p, "0123456789") != pl || atol(p) > 65535,
                  KAGI_ERR_ARG, "'%s': the port must be a number from 0 to 65535", a);
    memcpy(port, p, pl + 1);
    return KAGI_OK;
}

int kagi_serve_new(const kagi_serve_opts *o, kagi_serve **out)
{
    *out = NULL;
    const char *listen_at = o->listen ? o->listen : "127.0.0.1:8080";
    char host[256], port[8];
    KAGI__TRY(kagi__split(listen_at, host, sizeof host, port, sizeof port));
    struct addrinfo hints, *ai = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV | AI_PASSIVE;
    int g = getaddrinfo(host, port, &hints, &ai);
    KAGI__FAIL_IF(g != 0, KAGI_ERR_ARG, "'%s': %s", listen_at, gai_strerror(g));
    kagi_serve *s = calloc(1, sizeof *s);
    if (!s) {
        freeaddrinfo(ai);
        return kagi__err(KAGI_ERR_NOMEM, "dashboard: out of memory");
    }
    s->o = *o;
    if (!s->o.max_conns) s->o.max_conns = 64;
    if (!s->o.header_limit) s->o.header_limit = 8192;
    if (!s->o.timeout_s) s->o.timeout_s = 10;
    s->lfd = -1;
    int err = 0;
    for (struct addrinfo *p = ai; p && s->lfd < 0; p = p->ai_next) {
        int fd = socket(p->ai_family, p->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0) {
            err = errno;
            continue;
        }
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, p->ai_addr, p->ai_addrlen) != 0 || listen(fd, 64) != 0) {
            err = errno;
            close(fd);
            continue;
        }
        s->lfd = fd;
    }
    freeaddrinfo(ai);
    if (s->lfd < 0) {
        free(s);
        return kagi__err(KAGI_ERR_NET, "dashboard: cannot listen on %s: %s", listen_at,
                         strerror(err));
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    char ip[INET6_ADDRSTRLEN] = "?";
    unsigned pn = 0;
    if (getsockname(s->lfd, (struct sockaddr *)&ss, &sl) == 0) {
        if (ss.ss_family == AF_INET) {
            struct sockaddr_in *a = (struct sockaddr_in *)&ss;
            inet_ntop(AF_INET, &a->sin_addr, ip, sizeof ip);
            pn = ntohs(a->sin_port);
            s->loopback = (ntohl(a->sin_addr.s_addr) >> 24) == 127;
            snprintf(s->url, sizeof s->url, "http://%s:%u/", ip, pn);
        } else {
            struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
            inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof ip);
            pn = ntohs(a->sin6_port);
            s->loopback = IN6_IS_ADDR_LOOPBACK(&a->sin6_addr);
            snprintf(s->url, sizeof s->url, "http://[%s]:%u/", ip, pn);
        }
    }
    s->c = calloc(s->o.max_conns, sizeof *s->c);
    s->pfd = calloc(s->o.max_conns + 1, sizeof *s->pfd);
    if (!s->c || !s->pfd) {
        kagi_serve_free(s);
        return kagi__err(KAGI_ERR_NOMEM, "dashboard: out of memory");
    }
    for (size_t i = 0; i < s->o.max_conns; i++) s->c[i].fd = -1;
    s->nc = s->o.max_conns;
    if (o->web_dir) snprintf(s->web, sizeof s->web, "%s", o->web_dir);
    *out = s;
    return KAGI_OK;
}

static void kagi__drop(kagi__conn *c)
{
    if (c->fd >= 0) close(c->fd);
    free(c->in);
    kagi_buf_free(&c->out);
    memset(c, 0, sizeof *c);
    c->fd = -1;
}

void kagi_serve_free(kagi_serve *s)
{
    if (!s) return;
    for (size_t i = 0; s->c && i < s->nc; i++) kagi__drop(&s->c[i]);
    if (s->lfd >= 0) close(s->lfd);
    free(s->c);
    free(s->pfd);
    free(s->state);
    free(s);
}

const char *kagi_serve_url(const kagi_serve *s) { return s->url; }
int kagi_serve_loopback(const kagi_serve *s) { return s->loopback; }

/* ---- responses ---------------------------------------------------------------- */

static const char *kagi__reason(int st)
{
    switch (st) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 413: return "Content Too Large";
    case 417: return "Expectation Failed";
    case 431: return "Request Header Fields Too Large";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default: return "Error";
    }
}

/* Queue a whole response on c. */
static void kagi__respond(kagi__conn *c, int status, const char *type, const void *body,
                          size_t len, int keep, int head_only)
{
    kagi_buf_printf(&c->out, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                  "Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n"
                  "Content-Security-Policy: default-src 'self'; style-src 'self' "
                  "'unsafe-inline'; img-src 'self' data:\r\n%s%s\r\n", status,
                  kagi__reason(status), type, len, status == 405 ? "Allow: GET, HEAD\r\n" : "",
                  keep ? "" : "Connection: close\r\n");
    if (!head_only && len) kagi_buf_put(&c->out, body, len);
    if (!keep) c->close_after = 1;
}

static void kagi__error(kagi__conn *c, int status, const char *why, int keep)
{
    char body[320];
    int n = snprintf(body, sizeof body, "{\"error\": \"%d %s\", \"why\": \"%s\"}\n", status,
                     kagi__reason(status), why);
    kagi__respond(c, status, "application/json", body, (size_t)n, keep, 0);
}

static void kagi__static(kagi_serve *s, kagi__conn *c, const char *path, size_t len, int keep,
                         int head)
{
    char file[PATH_MAX];
    if (!s->web[0]) {
        kagi__error(c, 404, "no web folder", keep);
        return;
    }
    if (kagi_serve_resolve(s->web, path, len, file, sizeof file) != KAGI_OK)
        {
            kagi__error(c, 404, "no such file", keep);
            return;
        }
    int fd = open(file, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
        (size_t)st.st_size > KAGI__FILE_MAX) {
        if (fd >= 0) close(fd);
        {
            kagi__error(c, 404, "no such file", keep);
            return;
        }
    }
    size_t n = (size_t)st.st_size, got = 0;
    uint8_t *p = malloc(n ? n : 1);
    while (p && got < n) {
        ssize_t r = read(fd, p + got, n - got);
        if (r <= 0) break;
        got += (size_t)r;
    }
    close(fd);
    if (!p || got != n) {
        free(p);
        {
            kagi__error(c, 503, "cannot read the file", 0);
            return;
        }
    }
    kagi__respond(c, 200, kagi_serve_type(file), p, n, keep, head);
    free(p);
}

static void kagi__start_stream(kagi_serve *s, kagi__conn *c)
{
    kagi_buf_printf(&c->out, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                  "Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n\r\n"
                  "retry: 1000\n\n");
    if (s->state) kagi_sse_frame(&c->out, "state", s->state, s->state_len);
    c->stream = 1;
}

/* One complete request r from c's input. */
static void kagi__handle(kagi_serve *s, kagi__conn *c, const kagi_http_req *r, double now)
{
    int keep = r->keep_alive;
    const char *m = (const char *)c->in;
    int head = r->method == KAGI_HTTP_OTHER && r->target - m == 5 && !memcmp(m, "HEAD ", 5);
    if (r->method != KAGI_HTTP_GET && !head)
        {
            kagi__error(c, 405, "the dashboard is read-only: GET only", keep);
            return;
        }
    if (r->body_len) {
        kagi__error(c, 400, "a GET carries no body", 0);
        return;
    }
    const char *p = r->target;
    size_t pl = r->path_len;
#define KAGI__IS(lit) (pl == strlen(lit) && !memcmp(p, lit, pl))
    if (KAGI__IS("/api/state")) {
        if (!s->state) {
            kagi__error(c, 503, "no state yet", keep);
            return;
        }
        {
            kagi__respond(c, 200, "application/json", s->state, s->state_len, keep, head);
            return;
        }
    }
    if (KAGI__IS("/api/stream")) {
        if (head) {
            kagi__respond(c, 200, "text/event-stream", "", 0, keep, 1);
            return;
        }
        c->last_write = now;
        {
            kagi__start_stream(s, c);
            return;
        }
    }
    if (pl >= 5 && !memcmp(p, "/api/", 5)) {
        if (!s->o.api) {
            kagi__error(c, 404, "no such resource", keep);
            return;
        }
        kagi_serve_reply rep;
        memset(&rep, 0, sizeof rep);
        rep.status = 404;
        kagi_buf_init(&rep.body, KAGI__OUT_LIMIT);
        s->o.api(s->o.api_ctx, p, pl, r->query, r->query_len, &rep);
        if (rep.body.err) kagi__error(c, 503, "answer too large or out of memory", keep);
        else if (rep.status != 200 && !rep.body.len)
            kagi__error(c, rep.status, rep.status == 404 ? "no such resource" : "refused", keep);
        else
            kagi__respond(c, rep.status, rep.type ? rep.type : "application/json", rep.body.p,
                          rep.body.len, keep, head);
        kagi_buf_free(&rep.body);
        return;
    }
#undef KAGI__IS
    kagi__static(s, c, p, pl, keep, head);
}

/* Parse and answer what c's input holds. */
static void kagi__input(kagi_serve *s, kagi__conn *c, double now)
{
    while (c->in_len && !c->close_after && !c->stream && c->out.len == c->out_off) {
        kagi_http_req r;
        const char *why;
        int rc = kagi_http_parse(c->in, c->in_len, s->o.header_limit, 0, &r, &why);
        if (rc == 1) return; /* more bytes to come */
        if (rc != 0) {
            kagi__error(c, rc, why, 0);
            return;
        }
        kagi__handle(s, c, &r, now);
        memmove(c->in, c->in + r.total, c->in_len - r.total);
        c->in_len -= r.total;
        c->deadline = now + s->o.timeout_s;
    }
}

static void kagi__accept(kagi_serve *s, double now)
{
    for (int k = 0; k < 16; k++) {
        int fd = accept4(s->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) return;
        kagi__conn *c = NULL;
        for (size_t i = 0; i < s->nc && !c; i++)
            if (s->c[i].fd < 0) c = &s->c[i];
        uint8_t *in = c ? malloc(s->o.header_limit + 1) : NULL;
        if (!in) { /* full: refuse at once rather than queue */
            static const char busy[] = "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n"
                                       "Connection: close\r\n\r\n";
            ssize_t w = send(fd, busy, sizeof busy - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
            (void)w;
            close(fd);
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        memset(c, 0, sizeof *c);
        c->fd = fd;
        c->in = in;
        kagi_buf_init(&c->out, KAGI__OUT_LIMIT);
        c->deadline = now + s->o.timeout_s;
        c->last_write = now;
    }
}

/* Send what c has queued; 0 ok, -1 to drop it. */
static int kagi__flush(kagi_serve *s, kagi__conn *c, double now)
{
    while (c->out_off < c->out.len) {
        ssize_t w = send(c->fd, c->out.p + c->out_off, c->out.len - c->out_off, MSG_NOSIGNAL);
        if (w < 0) return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? 0 : -1;
        c->out_off += (size_t)w;
        c->last_write = now;
        c->deadline = now + s->o.timeout_s;
    }
    kagi_buf_reset(&c->out);
    c->out_off = 0;
    if (c->close_after) return -1;
    if (c->stream && c->stale && s->state) { /* the latest state it missed */
        c->stale = 0;
        kagi_sse_frame(&c->out, "state", s->state, s->state_len);
        return kagi__flush(s, c, now);
    }
    return 0;
}

int kagi_serve_poll(kagi_serve *s, int timeout_ms)
{
    double end = kagi__now() + timeout_ms / 1000.0;
    for (;;) {
        double now = kagi__now();
        size_t n = 0;
        s->pfd[n++] = (struct pollfd){.fd = s->lfd, .events = POLLIN};
        for (size_t i = 0; i < s->nc; i++) {
            kagi__conn *c = &s->c[i];
            if (c->fd < 0) continue;
            /* drop a client whose request or output is late; a stream
             * with nothing queued is idle, not late */
            int busy = c->out.len > c->out_off || !c->stream;
            if (busy && now > c->deadline) {
                kagi__drop(c);
                continue;
            }
            if (c->stream && c->out.len == c->out_off && now - c->last_write > KAGI__HEARTBEAT_S) {
                kagi_buf_put(&c->out, ": keep-alive\n\n", 14);
                c->deadline = now + s->o.timeout_s;
            }
            short ev = c->out.len > c->out_off ? POLLOUT : POLLIN;
            s->pfd[n++] = (struct pollfd){.fd = c->fd, .events = ev};
        }
        int wait = (int)((end - now) * 1000 + 0.5);
        if (wait < 0) wait = 0;
        if (wait > 1000) wait = 1000; /* deadlines are checked at least every second */
        int got = poll(s->pfd, n, wait);
        if (got < 0) {
            if (errno == EINTR) return KAGI_OK;
            return kagi__err(KAGI_ERR_NET, "dashboard: poll: %s", strerror(errno));
        }
        now = kagi__now();
        if (s->pfd[0].revents & POLLIN) kagi__accept(s, now);
        for (size_t k = 1; k < n; k++) {
            kagi__conn *c = NULL;
            for (size_t i = 0; i < s->nc && !c; i++)
                if (s->c[i].fd == s->pfd[k].fd) c = &s->c[i];
            if (!c || !s->pfd[k].revents) continue;
            if (s->pfd[k].revents & (POLLERR | POLLNVAL)) {
                kagi__drop(c);
                continue;
            }
            if (s->pfd[k].revents & (POLLIN | POLLHUP)) {
                size_t room = s->o.header_limit + 1 - c->in_len;
                ssize_t r = room ? recv(c->fd, c->in + c->in_len, room, 0) : 0;
                if (r == 0 && room) { /* the client closed */
                    kagi__drop(c);
                    continue;
                }
                if (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
                    kagi__drop(c);
                    continue;
                }
                if (r > 0) c->in_len += (size_t)r;
                if (c->stream) c->in_len = 0; /* a stream client has nothing more to ask */
                kagi__input(s, c, now);
            }
            if (c->out.len > c->out_off && kagi__flush(s, c, now) != 0) {
                kagi__drop(c);
                continue;
            }
            if (c->out.len == c->out_off) kagi__input(s, c, now); /* pipelined requests */
            if (c->out.len > c->out_off && kagi__flush(s, c, now) != 0) kagi__drop(c);
        }
        if (kagi__now() >= end) return KAGI_OK;
    }
}

int kagi_serve_publish(kagi_serve *s, const char *json, size_t len)
{
    char *copy = malloc(len + 1);
    KAGI__FAIL_IF(!copy, KAGI_ERR_NOMEM, "dashboard: out of memory (state of %zu bytes)", len);
    memcpy(copy, json, len);
    copy[len] = 0;
    free(s->state);
    s->state = copy;
    s->state_len = len;
    double now = kagi__now();
    for (size_t i = 0; i < s->nc; i++) {
        kagi__conn *c = &s->c[i];
        if (c->fd < 0 || !c->stream) continue;
        if (c->out.len > c->out_off) { /* still sending an older one: send the latest later */
            c->stale = 1;
            continue;
        }
        kagi_sse_frame(&c->out, "state", s->state, s->state_len);
        if (kagi__flush(s, c, now) != 0) kagi__drop(c);
    }
    return KAGI_OK;
}
