/* ETSI GS QKD 014 v1.1.1 request parsing: path, query string and JSON
 * body into a kagi_etsi_req, with every check that needs no KME state.
 * Strict: unknown parameters and fields, wrong JSON types, duplicates and
 * percent-encodings are refused with 400 and a message naming them. The
 * JSON parser is jansson (a maintained library), but for the usual
 * enc_keys body, which kagi__enc_fast reads; bodies are capped by the
 * HTTP layer before they get here. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "internal.h"
#include "kagi/kme.h"

static int kagi__bad(kagi_etsi_req *r, int status, const char *fmt, ...) KAGI__PRINTF(3, 4);
static int kagi__bad(kagi_etsi_req *r, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->message, sizeof r->message, fmt, ap);
    va_end(ap);
    r->status = status;
    return status;
}

int kagi_etsi_valid_id(const char *s, size_t len)
{
    if (len < 1 || len > KAGI_SAE_ID_MAX) return 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
              c == '_' || c == '~' || c == '-'))
            return 0;
    }
    return 1;
}

/* A decimal count in the query: digits only, no sign, at most 9 of them. */
static int kagi__qnum(const char *v, size_t n, unsigned *out)
{
    if (n < 1 || n > 9) return 0;
    unsigned x = 0;
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9') return 0;
        x = x * 10 + (unsigned)(v[i] - '0');
    }
    *out = x;
    return 1;
}

static int kagi__check_size(kagi_etsi_req *r, long long size, const kagi_etsi_limits *lim)
{
    if (size % 8 != 0) return kagi__bad(r, 400, "size shall be a multiple of 8");
    if (size < lim->min_key_size || size > lim->max_key_size)
        return kagi__bad(r, 400, "size %lld is outside min_key_size..max_key_size (%u..%u)", size,
                         lim->min_key_size, lim->max_key_size);
    r->size = (unsigned)size;
    return 0;
}

static int kagi__check_number(kagi_etsi_req *r, long long number, const kagi_etsi_limits *lim)
{
    if (number < 1) return kagi__bad(r, 400, "number shall be at least 1");
    if (number > lim->max_keys_per_request)
        return kagi__bad(r, 400, "number %lld exceeds max_key_per_request (%u)", number,
                         lim->max_keys_per_request);
    r->number = (unsigned)number;
    return 0;
}

static int kagi__query(kagi_etsi_req *r, const char *q, size_t qn, const kagi_etsi_limits *lim)
{
    int seen_number = 0, seen_size = 0, seen_id = 0;
    size_t i = 0;
    while (i < qn) {
        size_t j = i;
        while (j < qn && q[j] != '&') j++;
        const char *p = q + i, *eq = memchr(p, '=', j - i);
        size_t kl = eq ? (size_t)(eq - p) : j - i;
        const char *v = eq ? eq + 1 : p + j - i;
        size_t vl = eq ? (size_t)(q + j - v) : 0;
        i = j + 1;
        if (kl == 0 && vl == 0 && !eq) continue; /* "a=1&&b=2" */
        if (memchr(p, '%', (size_t)(q + j - p)) || memchr(p, '+', (size_t)(q + j - p)))
            return kagi__bad(r, 400, "percent-encoded query parameters are not accepted");
        int is_num = kl == 6 && !memcmp(p, "number", 6), is_size = kl == 4 && !memcmp(p, "size", 4);
        int is_id = kl == 6 && !memcmp(p, "key_ID", 6);
        if (r->call == KAGI_ETSI_ENC_KEYS && (is_num || is_size)) {
            unsigned x = 0;
            if ((is_num && seen_number++) || (is_size && seen_size++))
                return kagi__bad(r, 400, "query parameter %s given twice", is_num ? "number" : "size");
            if (!kagi__qnum(v, vl, &x))
                return kagi__bad(r, 400, "query parameter %s is not a whole number", is_num ? "number" : "size");
            int e = is_num ? kagi__check_number(r, x, lim) : kagi__check_size(r, x, lim);
            if (e) return e;
        } else if (r->call == KAGI_ETSI_DEC_KEYS && is_id) {
            if (seen_id++) return kagi__bad(r, 400, "query parameter key_ID given twice");
            if (kagi_uuid_parse(v, vl, r->ids[0]) != KAGI_OK)
                return kagi__bad(r, 400, "key_ID is not a UUID");
            r->n_ids = 1;
        } else {
            char name[40];
            size_t nl = kl < 32 ? kl : 32;
            size_t o = 0;
            for (size_t k = 0; k < nl; k++) name[o++] = (p[k] >= 0x20 && p[k] < 0x7f) ? p[k] : '?';
            name[o] = '\0';
            return kagi__bad(r, 400, "unknown query parameter '%s%s'", name, kl > 32 ? "..." : "");
        }
    }
    if (r->call == KAGI_ETSI_DEC_KEYS && !seen_id)
        return kagi__bad(r, 400, "key_ID query parameter is missing");
    return 0;
}

/* A field name for a message: printable ASCII, cut at 40 characters. */
static void kagi__name(char *out, size_t cap, const char *s)
{
    size_t o = 0;
    for (size_t i = 0; s[i] && o + 4 < cap; i++) {
        if (i == 40) {
            memcpy(out + o, "...", 3);
            o += 3;
            break;
        }
        out[o++] = ((unsigned char)s[i] >= 0x20 && (unsigned char)s[i] < 0x7f) ? s[i] : '?';
    }
    out[o] = '\0';
}

static int kagi__json_int(kagi_etsi_req *r, json_t *v, const char *field, long long *out)
{
    if (!json_is_integer(v)) return kagi__bad(r, 400, "%s shall be an integer", field);
    *out = json_integer_value(v);
    return 0;
}

static int kagi__ext_list(kagi_etsi_req *r, json_t *v, const char *field, int mandatory)
{
    if (!json_is_array(v)) return kagi__bad(r, 400, "%s shall be an array of objects", field);
    size_t i;
    json_t *o;
    json_array_foreach(v, i, o) {
        if (!json_is_object(o)) return kagi__bad(r, 400, "%s shall be an array of objects", field);
        if (!mandatory) continue;
        const char *k;
        json_t *x;
        json_object_foreach(o, k, x) {
            (void)x;
            if (r->n_unsupported < 8)
                kagi__name(r->unsupported[r->n_unsupported++], sizeof r->unsupported[0], k);
        }
    }
    /* kagi supports no extension: any mandatory one is refused. */
    if (mandatory && json_array_size(v) > 0)
        return kagi__bad(r, 400, "not all extension_mandatory parameters are supported");
    return 0;
}

static int kagi__enc_body(kagi_etsi_req *r, json_t *root, const kagi_etsi_limits *lim)
{
    const char *k;
    json_t *v;
    json_t *ext_m = NULL;
    json_object_foreach(root, k, v) {
        long long x = 0;
        int e = 0;
        if (!strcmp(k, "number")) {
            if (!(e = kagi__json_int(r, v, "number", &x))) e = kagi__check_number(r, x, lim);
        } else if (!strcmp(k, "size")) {
            if (!(e = kagi__json_int(r, v, "size", &x))) e = kagi__check_size(r, x, lim);
        } else if (!strcmp(k, "additional_slave_SAE_IDs")) {
            if (!json_is_array(v))
                return kagi__bad(r, 400, "additional_slave_SAE_IDs shall be an array of strings");
            if (json_array_size(v) > lim->max_sae_id_count)
                return kagi__bad(r, 400, "additional_slave_SAE_IDs has %zu entries, max_SAE_ID_count is %u",
                                 json_array_size(v), lim->max_sae_id_count);
            size_t i;
            json_t *s;
            json_array_foreach(v, i, s) {
                if (!json_is_string(s) ||
                    !kagi_etsi_valid_id(json_string_value(s), json_string_length(s)))
                    return kagi__bad(r, 400, "additional_slave_SAE_IDs[%zu] is not a valid SAE ID", i);
                if (r->n_extra == KAGI_MAX_SLAVES - 1)
                    return kagi__bad(r, 400, "too many additional_slave_SAE_IDs");
                for (unsigned j = 0; j < r->n_extra; j++)
                    if (!strcmp(r->extra[j], json_string_value(s)))
                        return kagi__bad(r, 400, "additional_slave_SAE_IDs lists %s twice", r->extra[j]);
                snprintf(r->extra[r->n_extra++], sizeof r->extra[0], "%s", json_string_value(s));
            }
        } else if (!strcmp(k, "extension_mandatory")) {
            ext_m = v; /* checked last: the other errors name simpler faults */
        } else if (!strcmp(k, "extension_optional")) {
            e = kagi__ext_list(r, v, "extension_optional", 0);
        } else {
            char name[48];
            kagi__name(name, sizeof name, k);
            return kagi__bad(r, 400, "unknown field '%s'", name);
        }
        if (e) return e;
    }
    return ext_m ? kagi__ext_list(r, ext_m, "extension_mandatory", 1) : 0;
}

static size_t kagi__ws(const uint8_t *b, size_t n, size_t i)
{
    while (i < n && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r')) i++;
    return i;
}

/* The usual enc_keys body, {"number":N,"size":S} (either, both or none, in
 * any order, JSON whitespace, N and S plain JSON integers of up to 9
 * digits), read without building a JSON tree: jansson's parse cost more
 * than the rest of the request. 1 when it is such a body (*status: its
 * checks' result, in member order as in kagi__enc_body); 0 for anything
 * else, which jansson parses with its own messages. */
static int kagi__enc_fast(kagi_etsi_req *r, const uint8_t *b, size_t n, const kagi_etsi_limits *lim, int *status)
{
    long long val[2];
    int is_num[2], k = 0;
    size_t i = kagi__ws(b, n, 0);
    if (i == n || b[i++] != '{') return 0;
    i = kagi__ws(b, n, i);
    if (i < n && b[i] == '}') {
        i++;
    } else {
        for (;;) {
            if (k == 2) return 0;
            if (n - i >= 8 && !memcmp(b + i, "\"number\"", 8)) is_num[k] = 1, i += 8;
            else if (n - i >= 6 && !memcmp(b + i, "\"size\"", 6)) is_num[k] = 0, i += 6;
            else return 0;
            if (k == 1 && is_num[0] == is_num[1]) return 0; /* a duplicate: jansson refuses it */
            i = kagi__ws(b, n, i);
            if (i == n || b[i++] != ':') return 0;
            i = kagi__ws(b, n, i);
            size_t d = i;
            long long x = 0;
            while (i < n && b[i] >= '0' && b[i] <= '9' && i - d < 10) x = x * 10 + (b[i++] - '0');
            if (i == d || i - d > 9 || (b[d] == '0' && i - d > 1)) return 0;
            val[k++] = x;
            i = kagi__ws(b, n, i);
            if (i == n) return 0;
            if (b[i] == '}') {
                i++;
                break;
            }
            if (b[i++] != ',') return 0;
            i = kagi__ws(b, n, i);
        }
    }
    if (kagi__ws(b, n, i) != n) return 0;
    *status = 0;
    for (int j = 0; j < k && !*status; j++)
        *status = is_num[j] ? kagi__check_number(r, val[j], lim) : kagi__check_size(r, val[j], lim);
    return 1;
}

static int kagi__dec_body(kagi_etsi_req *r, json_t *root, const kagi_etsi_limits *lim)
{
    const char *k;
    json_t *v, *ids = NULL;
    json_object_foreach(root, k, v) {
        if (!strcmp(k, "key_IDs")) {
            ids = v;
        } else if (!strcmp(k, "key_IDs_extension")) {
            if (!json_is_object(v)) return kagi__bad(r, 400, "key_IDs_extension shall be an object");
        } else {
            char name[48];
            kagi__name(name, sizeof name, k);
            return kagi__bad(r, 400, "unknown field '%s'", name);
        }
    }
    if (!ids) return kagi__bad(r, 400, "key_IDs is missing");
    if (!json_is_array(ids)) return kagi__bad(r, 400, "key_IDs shall be an array of objects");
    size_t n = json_array_size(ids);
    if (n < 1) return kagi__bad(r, 400, "key_IDs is empty");
    unsigned cap = lim->max_keys_per_request < KAGI_ETSI_MAX_IDS ? lim->max_keys_per_request : KAGI_ETSI_MAX_IDS;
    if (n > cap) return kagi__bad(r, 400, "key_IDs has %zu entries, max_key_per_request is %u", n, cap);
    size_t i;
    json_t *o;
    json_array_foreach(ids, i, o) {
        if (!json_is_object(o)) return kagi__bad(r, 400, "key_IDs[%zu] shall be an object", i);
        json_t *id = NULL;
        json_object_foreach(o, k, v) {
            if (!strcmp(k, "key_ID")) id = v;
            else if (!strcmp(k, "key_ID_extension")) {
                if (!json_is_object(v))
                    return kagi__bad(r, 400, "key_IDs[%zu].key_ID_extension shall be an object", i);
            } else {
                char name[48];
                kagi__name(name, sizeof name, k);
                return kagi__bad(r, 400, "unknown field 'key_IDs[%zu].%s'", i, name);
            }
        }
        if (!json_is_string(id)) return kagi__bad(r, 400, "key_IDs[%zu].key_ID is missing or not a string", i);
        if (kagi_uuid_parse(json_string_value(id), json_string_length(id), r->ids[r->n_ids]) != KAGI_OK)
            return kagi__bad(r, 400, "key_IDs[%zu].key_ID is not a UUID", i);
        r->n_ids++;
    }
    return 0;
}

int kagi_etsi_parse(kagi_etsi_req *r, kagi_etsi_method method, const char *path, size_t path_len,
                    const char *query, size_t query_len, const uint8_t *body, size_t body_len,
                    const kagi_etsi_limits *lim)
{
    r->status = 0;
    r->message[0] = '\0';
    r->n_extra = r->n_ids = r->n_unsupported = 0;
    r->number = 1;
    r->size = lim->key_size;
    r->sae[0] = '\0';
    r->call = 0;
    static const char prefix[] = "/api/v1/keys/";
    const size_t pl = sizeof prefix - 1;
    if (path_len <= pl || memcmp(path, prefix, pl) != 0) return kagi__bad(r, 404, "not found");
    const char *id = path + pl, *end = path + path_len;
    const char *slash = memchr(id, '/', (size_t)(end - id));
    if (!slash) return kagi__bad(r, 404, "not found");
    const char *op = slash + 1;
    size_t ol = (size_t)(end - op);
    if (ol == 6 && !memcmp(op, "status", 6)) r->call = KAGI_ETSI_STATUS;
    else if (ol == 8 && !memcmp(op, "enc_keys", 8)) r->call = KAGI_ETSI_ENC_KEYS;
    else if (ol == 8 && !memcmp(op, "dec_keys", 8)) r->call = KAGI_ETSI_DEC_KEYS;
    else return kagi__bad(r, 404, "not found");
    size_t il = (size_t)(slash - id);
    if (!kagi_etsi_valid_id(id, il))
        return kagi__bad(r, 400, "%s is not a valid SAE ID",
                         r->call == KAGI_ETSI_DEC_KEYS ? "master_SAE_ID" : "slave_SAE_ID");
    memcpy(r->sae, id, il);
    r->sae[il] = '\0';
    if (method != KAGI_HTTP_GET && (method != KAGI_HTTP_POST || r->call == KAGI_ETSI_STATUS))
        return kagi__bad(r, 405, "method not allowed");
    if (!query) query_len = 0;
    if (r->call == KAGI_ETSI_STATUS) {
        if (query_len) return kagi__bad(r, 400, "status takes no query parameters");
        return 0;
    }
    if (method == KAGI_HTTP_GET) {
        if (body_len) return kagi__bad(r, 400, "a GET request has no body");
        return kagi__query(r, query, query_len, lim);
    }
    if (query_len) return kagi__bad(r, 400, "a POST request takes its parameters in the body");
    if (!body_len) return kagi__bad(r, 400, "request body is empty (a JSON object was expected)");
    int fast;
    if (r->call == KAGI_ETSI_ENC_KEYS && kagi__enc_fast(r, body, body_len, lim, &fast)) return fast;
    json_error_t err;
    json_t *root = json_loadb((const char *)body, body_len, JSON_REJECT_DUPLICATES, &err);
    if (!root) {
        char text[100];
        kagi__name(text, sizeof text, err.text);
        return kagi__bad(r, 400, "request body is not valid JSON: %s (line %d, column %d)", text,
                         err.line, err.column);
    }
    int e;
    if (!json_is_object(root)) e = kagi__bad(r, 400, "request body shall be a JSON object");
    else if (r->call == KAGI_ETSI_ENC_KEYS) e = kagi__enc_body(r, root, lim);
    else e = kagi__dec_body(r, root, lim);
    json_decref(root);
    return e;
}
