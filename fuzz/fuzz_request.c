/* libFuzzer harness for everything a client sends the KME before any
 * state is touched: the HTTP/1.1 framing (kagi_http_parse) and the ETSI
 * GS QKD 014 path, query and JSON body (kagi_etsi_parse). Besides the
 * sanitizers, it checks what a successful parse promises: lengths inside
 * the input, counts and sizes inside the limits.
 *   make fuzz                 builds and runs it (FUZZ_SECONDS, default 60)
 *   build-fuzz/fuzz_request DIR   to run it by hand on a corpus */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kagi/kme.h"

static const kagi_etsi_limits lim = {256, 64, 8192, 32, 4};

static void check(const kagi_etsi_req *r, int st)
{
    if (st != r->status) abort();
    if (st) {
        if (st != 400 && st != 404 && st != 405) abort();
        if (!r->message[0] || !memchr(r->message, 0, sizeof r->message)) abort();
        return;
    }
    if (!kagi_etsi_valid_id(r->sae, strlen(r->sae))) abort();
    if (r->call == KAGI_ETSI_ENC_KEYS) {
        if (r->number < 1 || r->number > lim.max_keys_per_request) abort();
        if (r->size % 8 || r->size < lim.min_key_size || r->size > lim.max_key_size) abort();
        if (r->n_extra > lim.max_sae_id_count) abort();
        for (unsigned i = 0; i < r->n_extra; i++)
            if (!kagi_etsi_valid_id(r->extra[i], strlen(r->extra[i]))) abort();
    } else if (r->call == KAGI_ETSI_DEC_KEYS) {
        if (r->n_ids < 1 || r->n_ids > lim.max_keys_per_request) abort();
    } else if (r->call != KAGI_ETSI_STATUS) {
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
    static kagi_etsi_req r;
    kagi_http_req h;
    const char *why = NULL;
    int st = kagi_http_parse(d, n, 4096, 8192, &h, &why);
    if (!why) abort();
    if (st == 0) {
        if (h.total > n || h.head_len > h.total || h.head_len + h.body_len != h.total) abort();
        if ((const uint8_t *)h.target < d || (const uint8_t *)h.target + h.target_len > d + h.head_len) abort();
        if (h.path_len > h.target_len) abort();
        if (h.query && h.query + h.query_len != h.target + h.target_len) abort();
        check(&r, kagi_etsi_parse(&r, h.method, h.target, h.path_len, h.query, h.query_len, h.body, h.body_len,
                                  &lim));
    } else if (st != 1 && st != 400 && st != 413 && st != 417 && st != 431 && st != 501 && st != 505) {
        abort();
    }
    /* The same bytes as a JSON body and as a query string, without framing. */
    static const char enc[] = "/api/v1/keys/SAE_B/enc_keys", dec[] = "/api/v1/keys/SAE_A/dec_keys";
    check(&r, kagi_etsi_parse(&r, KAGI_HTTP_POST, enc, sizeof enc - 1, NULL, 0, d, n, &lim));
    check(&r, kagi_etsi_parse(&r, KAGI_HTTP_POST, dec, sizeof dec - 1, NULL, 0, d, n, &lim));
    check(&r, kagi_etsi_parse(&r, KAGI_HTTP_GET, enc, sizeof enc - 1, (const char *)d, n, NULL, 0, &lim));
    check(&r, kagi_etsi_parse(&r, KAGI_HTTP_GET, dec, sizeof dec - 1, (const char *)d, n, NULL, 0, &lim));
    return 0;
}
