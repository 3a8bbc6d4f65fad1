/* A strict HTTP/1.1 request parser for the ETSI 014 server: the request
 * line, the header section and a Content-Length body, nothing else.
 * Anything outside that subset is refused with a status and a reason:
 * chunked or other transfer codings (501), obsolete line folding, bare
 * LF, control characters, absolute-form targets, conflicting lengths
 * (400), oversized heads (431) or bodies (413), other versions (505).
 * Pure: it reads only buf[0..len) and allocates nothing. */
#include <stdint.h>
#include <string.h>

#include "kagi/kme.h"

static int kagi__tchar(unsigned char c)
{
    /* RFC 9110 tchar as a bit set: ALPHA, DIGIT and !#$%&'*+-.^_`|~ */
    static const uint64_t set[2] = {0x03ff6cfa00000000ull, 0x57ffffffc7fffffeull};
    return c < 128 && (set[c >> 6] >> (c & 63) & 1);
}

static int kagi__ieq(const char *a, size_t n, const char *lit)
{
    if (!n || (a[0] | 0x20) != lit[0]) return 0; /* most names differ at once */
    size_t m = strlen(lit);
    if (n != m) return 0;
    for (size_t i = 0; i < n; i++) {
        char x = a[i];
        if (x >= 'A' && x <= 'Z') x = (char)(x - 'A' + 'a');
        if (x != lit[i]) return 0;
    }
    return 1;
}

/* Does the comma-separated token list v contain tok (case-insensitive)? */
static int kagi__has_token(const char *v, size_t n, const char *tok)
{
    size_t i = 0;
    while (i < n) {
        while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ',')) i++;
        size_t j = i;
        while (j < n && v[j] != ',' && v[j] != ' ' && v[j] != '\t') j++;
        if (j > i && kagi__ieq(v + i, j - i, tok)) return 1;
        i = j;
    }
    return 0;
}

#define KAGI__BAD(code, text)                                                                      \
    do {                                                                                           \
        *why = (text);                                                                             \
        return (code);                                                                             \
    } while (0)

int kagi_http_parse(const uint8_t *buf, size_t len, size_t header_limit, size_t body_limit,
                    kagi_http_req *r, const char **why)
{
    memset(r, 0, sizeof *r);
    *why = "";
    const char *s = (const char *)buf;
    /* The head ends at the first CRLFCRLF; a bare LF anywhere is refused. */
    size_t end = 0;
    /* LF by LF (memchr), not byte by byte: the bytes up to header_limit,
       and the one at header_limit, which may still end the head. */
    size_t scan = len < header_limit + 1 ? len : header_limit + 1;
    for (const char *lf = memchr(s, '\n', scan); lf; lf = memchr(lf + 1, '\n', scan - (size_t)(lf + 1 - s))) {
        size_t i = (size_t)(lf - s);
        if (i == 0 || s[i - 1] != '\r') KAGI__BAD(400, "bare LF in the request head");
        if (i >= 3 && s[i - 2] == '\n' && s[i - 3] == '\r') {
            end = i + 1;
            break;
        }
    }
    if (!end) return len > header_limit ? (*why = "request head too large", 431) : 1;
    r->head_len = end;
    /* request line: METHOD SP origin-form SP HTTP/1.x CRLF */
    size_t eol = (size_t)((const char *)memchr(s, '\r', end) - s);
    const char *sp1 = memchr(s, ' ', eol);
    if (!sp1) KAGI__BAD(400, "malformed request line");
    size_t ml = (size_t)(sp1 - s);
    const char *tgt = sp1 + 1;
    const char *sp2 = memchr(tgt, ' ', eol - ml - 1);
    if (!sp2 || sp2 == tgt) KAGI__BAD(400, "malformed request line");
    size_t tl = (size_t)(sp2 - tgt), vl = eol - ml - 1 - tl - 1;
    const char *ver = sp2 + 1;
    for (size_t i = 0; i < ml; i++)
        if (!kagi__tchar((unsigned char)s[i])) KAGI__BAD(400, "malformed method");
    if (ml == 3 && !memcmp(s, "GET", 3)) r->method = KAGI_HTTP_GET;
    else if (ml == 4 && !memcmp(s, "POST", 4)) r->method = KAGI_HTTP_POST;
    else r->method = KAGI_HTTP_OTHER;
    if (vl == 8 && !memcmp(ver, "HTTP/1.1", 8)) r->keep_alive = 1;
    else if (vl == 8 && !memcmp(ver, "HTTP/1.0", 8)) r->keep_alive = 0;
    else KAGI__BAD(505, "only HTTP/1.1 and HTTP/1.0 are served");
    if (tgt[0] != '/') KAGI__BAD(400, "request target must be a path");
    for (size_t i = 0; i < tl; i++) {
        unsigned char c = (unsigned char)tgt[i];
        if (c <= 0x20 || c >= 0x7f || c == '#') KAGI__BAD(400, "invalid character in the request target");
    }
    r->target = tgt;
    r->target_len = tl;
    const char *q = memchr(tgt, '?', tl);
    r->path_len = q ? (size_t)(q - tgt) : tl;
    r->query = q ? q + 1 : NULL;
    r->query_len = q ? tl - r->path_len - 1 : 0;
    /* header fields */
    int have_len = 0;
    unsigned long long clen = 0;
    size_t p = eol + 2;
    while (p < end - 2) {
        size_t e = (size_t)((const char *)memchr(s + p, '\r', end - p) - s); /* the head ends in CRLFCRLF */
        if (s[p] == ' ' || s[p] == '\t') KAGI__BAD(400, "obsolete header line folding");
        const char *colon = memchr(s + p, ':', e - p);
        if (!colon || colon == s + p) KAGI__BAD(400, "malformed header field");
        size_t nl = (size_t)(colon - (s + p));
        for (size_t i = 0; i < nl; i++)
            if (!kagi__tchar((unsigned char)s[p + i])) KAGI__BAD(400, "malformed header name");
        const char *v = colon + 1;
        size_t vn = (size_t)(s + e - v);
        for (size_t i = 0; i < vn; i++) {
            unsigned char c = (unsigned char)v[i];
            if ((c < 0x20 && c != '\t') || c == 0x7f) KAGI__BAD(400, "control character in a header value");
        }
        while (vn && (*v == ' ' || *v == '\t')) v++, vn--;
        while (vn && (v[vn - 1] == ' ' || v[vn - 1] == '\t')) vn--;
        const char *name = s + p;
        if (kagi__ieq(name, nl, "content-length")) {
            unsigned long long x = 0;
            if (!vn || vn > 12) KAGI__BAD(400, "malformed Content-Length");
            for (size_t i = 0; i < vn; i++) {
                if (v[i] < '0' || v[i] > '9') KAGI__BAD(400, "malformed Content-Length");
                x = x * 10 + (unsigned)(v[i] - '0');
            }
            if (have_len && x != clen) KAGI__BAD(400, "conflicting Content-Length fields");
            have_len = 1;
            clen = x;
        } else if (kagi__ieq(name, nl, "transfer-encoding")) {
            KAGI__BAD(501, "transfer codings are not accepted: send Content-Length");
        } else if (kagi__ieq(name, nl, "connection")) {
            if (kagi__has_token(v, vn, "close")) r->keep_alive = 0;
            else if (kagi__has_token(v, vn, "keep-alive")) r->keep_alive = 1;
        } else if (kagi__ieq(name, nl, "expect")) {
            if (!kagi__ieq(v, vn, "100-continue")) KAGI__BAD(417, "unsupported expectation");
            r->expect_continue = 1;
        }
        p = e + 2;
    }
    if (clen > body_limit) KAGI__BAD(413, "request body too large");
    r->body_len = (size_t)clen;
    if (len - end < r->body_len) return 1;
    r->body = buf + end;
    r->total = end + r->body_len;
    return 0;
}
