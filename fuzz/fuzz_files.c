/* libFuzzer harness for the files a KME reads: its configuration
 * (kagi_kme_config_parse) and the block files of a directory device
 * (kagi_block_parse), plus key_ID parsing. A parsed block must lie inside
 * the input; a parsed configuration must satisfy its documented rules. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kagi/kme.h"
#include "kagi/kms.h"

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
    char link[KAGI_LINK_NAME_MAX + 1];
    uint64_t id;
    const uint8_t *key;
    size_t klen;
    if (kagi_block_parse(d, n, link, &id, &key, &klen) == 0) {
        if (key != d + KAGI_BLOCK_HEADER || KAGI_BLOCK_HEADER + klen != n || id > (uint64_t)INT64_MAX) abort();
        if (!link[0] || strlen(link) > KAGI_LINK_NAME_MAX) abort();
    }
    uint8_t u[KAGI_KEY_ID_BYTES];
    if (kagi_uuid_parse((const char *)d, n, u) == 0) {
        char s[37];
        kagi_uuid_format(u, s);
        for (size_t i = 0; i < 36; i++) {
            char a = (char)d[i], b = s[i];
            if (a >= 'A' && a <= 'F') a = (char)(a - 'A' + 'a');
            if (a != b) abort();
        }
    }
    kagi_kme_config *c = NULL;
    if (kagi_kme_config_parse((const char *)d, n, "fuzz", &c) == 0) {
        if (!c->kme_id[0] || c->min_key_size > c->key_size || c->key_size > c->max_key_size) abort();
        if (c->key_size % 8 || c->min_key_size % 8 || c->max_key_size % 8) abort();
        for (size_t i = 0; i < c->n_saes; i++)
            if (!kagi_etsi_valid_id(c->saes[i].id, strlen(c->saes[i].id)) || !c->saes[i].kme[0]) abort();
        for (size_t i = 0; i < c->n_links; i++)
            if (!c->links[i].peer[0]) abort();
        kagi_kme_config_free(c);
    }
    return 0;
}
