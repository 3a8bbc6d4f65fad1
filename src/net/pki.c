/* A throwaway PKI (a CA and leaf certificates with CN = the SAE or KME
 * id) for tests, benchmarks and testbeds: OpenSSL's X.509 API, P-256
 * keys, SHA-256 signatures. Not for production: the CA key sits in the
 * folder next to the certificates. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "internal.h"
#include "kagi/kme.h"

static int kagi__ext(X509 *x, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
    X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    if (!e) return -1;
    int ok = X509_add_ext(x, e, -1);
    X509_EXTENSION_free(e);
    return ok ? 0 : -1;
}

static X509 *kagi__cert(const char *cn, EVP_PKEY *key, X509 *ca, EVP_PKEY *cakey)
{
    X509 *x = X509_new();
    BIGNUM *bn = BN_new();
    int ok = x && bn && X509_set_version(x, 2) && BN_rand(bn, 120, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) &&
             BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) &&
             X509_gmtime_adj(X509_getm_notBefore(x), -86400) &&
             X509_gmtime_adj(X509_getm_notAfter(x), 10L * 365 * 86400) && X509_set_pubkey(x, key);
    X509_NAME *nm = x ? X509_get_subject_name(x) : NULL;
    ok = ok && X509_NAME_add_entry_by_txt(nm, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    ok = ok && X509_set_issuer_name(x, ca ? X509_get_subject_name(ca) : nm);
    X509 *issuer = ca ? ca : x;
    if (ok && !ca) {
        ok = !kagi__ext(x, issuer, NID_basic_constraints, "critical,CA:TRUE") &&
             !kagi__ext(x, issuer, NID_key_usage, "critical,keyCertSign,cRLSign") &&
             !kagi__ext(x, issuer, NID_subject_key_identifier, "hash");
    } else if (ok) {
        ok = !kagi__ext(x, issuer, NID_basic_constraints, "critical,CA:FALSE") &&
             !kagi__ext(x, issuer, NID_key_usage, "critical,digitalSignature,keyAgreement") &&
             !kagi__ext(x, issuer, NID_ext_key_usage, "serverAuth,clientAuth") &&
             !kagi__ext(x, issuer, NID_subject_alt_name, "DNS:localhost,IP:127.0.0.1") &&
             !kagi__ext(x, issuer, NID_subject_key_identifier, "hash") &&
             !kagi__ext(x, issuer, NID_authority_key_identifier, "keyid");
    }
    ok = ok && X509_sign(x, ca ? cakey : key, EVP_sha256()) > 0;
    BN_free(bn);
    if (!ok) {
        X509_free(x);
        return NULL;
    }
    return x;
}

static int kagi__write_pem(const char *dir, const char *name, const char *ext, X509 *cert, EVP_PKEY *key)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s.%s", dir, name, ext);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, key ? 0600 : 0644);
    KAGI__FAIL_IF(fd < 0, KAGI_ERR_IO, "%s: %s", path, strerror(errno));
    if (key) (void)fchmod(fd, 0600);
    FILE *f = fdopen(fd, "w");
    if (!f) {
        close(fd);
        return kagi__err(KAGI_ERR_IO, "%s: %s", path, strerror(errno));
    }
    int ok = key ? PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL) : PEM_write_X509(f, cert);
    ok = (fclose(f) == 0) && ok;
    KAGI__FAIL_IF(!ok, KAGI_ERR_IO, "%s: cannot write", path);
    return KAGI_OK;
}

int kagi_pki_make(const char *dir, const char *ca_name, const char *const *names, size_t n)
{
    char cp[4200], kp[4200];
    snprintf(cp, sizeof cp, "%s/ca.pem", dir);
    snprintf(kp, sizeof kp, "%s/ca.key", dir);
    X509 *ca = NULL;
    EVP_PKEY *cakey = NULL;
    int e = KAGI_OK;
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        return kagi__err(KAGI_ERR_IO, "PKI %s: %s", dir, strerror(errno));
    FILE *f = fopen(cp, "r");
    if (f) {
        ca = PEM_read_X509(f, NULL, NULL, NULL);
        fclose(f);
        if ((f = fopen(kp, "r"))) {
            cakey = PEM_read_PrivateKey(f, NULL, NULL, NULL);
            fclose(f);
        }
        if (!ca || !cakey) e = kagi__err(KAGI_ERR_FORMAT, "PKI %s: unreadable ca.pem or ca.key", dir);
    } else {
        cakey = EVP_EC_gen("P-256");
        ca = cakey ? kagi__cert(ca_name, cakey, NULL, NULL) : NULL;
        if (!ca) e = kagi__err(KAGI_ERR_ARG, "PKI %s: cannot make the CA", dir);
        if (!e) e = kagi__write_pem(dir, "ca", "key", NULL, cakey);
        if (!e) e = kagi__write_pem(dir, "ca", "pem", ca, NULL);
    }
    for (size_t i = 0; !e && i < n; i++) {
        if (!kagi_etsi_valid_id(names[i], strlen(names[i]))) {
            e = kagi__err(KAGI_ERR_ARG, "PKI: '%s' is not a valid SAE or KME id", names[i]);
            break;
        }
        EVP_PKEY *key = EVP_EC_gen("P-256");
        X509 *x = key ? kagi__cert(names[i], key, ca, cakey) : NULL;
        if (!x) e = kagi__err(KAGI_ERR_ARG, "PKI: cannot make the certificate of %s", names[i]);
        if (!e) e = kagi__write_pem(dir, names[i], "key", NULL, key);
        if (!e) e = kagi__write_pem(dir, names[i], "pem", x, NULL);
        X509_free(x);
        EVP_PKEY_free(key);
    }
    X509_free(ca);
    EVP_PKEY_free(cakey);
    return e;
}
