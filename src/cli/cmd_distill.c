/* kagi distill: the whole pipeline, in one process or as one of two. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "internal.h"
#include "kagi/auth.h"
#include "kagi/distill.h"
#include "kagi/error.h"
#include "kagi/keyrate.h"
#include "kagi/sift.h"

static kagi_cli_opt kagi__opts[] = {
    {"alice", "FILE", "Alice's sifted key (in one process, or with --role alice)", 0, NULL},
    {"bob", "FILE", "Bob's sifted key (in one process, or with --role bob)", 0, NULL},
    {"bits", "N", "number of sifted bits (not with --raw)", 0, NULL},
    {"raw", NULL, "--alice and --bob are raw detection files (kagi link simulate): sift, "
                  "estimate with decoy states, distill", 0, NULL},
    {"out-alice", "FILE", "Alice's final key", 0, NULL},
    {"out-bob", "FILE", "Bob's final key", 0, NULL},
    {"eps-sec", "E", "secrecy parameter (default 1e-10)", 0, NULL},
    {"eps-cor", "E", "correctness parameter (default 1e-15)", 0, NULL},
    {"sample-bits", "K", "bits disclosed for estimation (default ~7 N^(2/3))", 0, NULL},
    {"method", "NAME", "reconciliation: cascade (default) or ldpc (one syndrome message per "
                       "batch of frames, blind reveals; docs/ldpc.md)", 0, NULL},
    {"ldpc-f", "auto|F", KAGI_CLI_LDPC_F_HELP, 0, NULL},
    {"threads", "N", "threads for LDPC decoding and privacy amplification (default: the CPUs "
                     "online, at most 64; in one process the two parties share them)", 0, NULL},
    {"role", "alice|bob", "run one party only, over TCP", 0, NULL},
    {"listen", "HOST:PORT", "with --role: wait for the peer here", 0, NULL},
    {"connect", "HOST:PORT", "with --role: connect to the peer here", 0, NULL},
    {"auth-key", "FILE", "with --role: pre-shared authentication key (bit file, consumed)", 0, NULL},
    {"timeout", "SECONDS", "with --role: give up on a silent peer (default 30)", 0, NULL},
    {"json", NULL, "print the report as JSON", 0, NULL},
    {NULL, NULL, NULL, 0, NULL},
};

static double kagi__mbps(size_t bits, double s) { return s > 0 ? (double)bits / s / 1e6 : 0; }

/* The LDPC figures of the report, as JSON fields (each followed by ", ")
 * or as indented text lines. */
static void kagi__print_ldpc(const kagi_ldpc_stats *l, int json)
{
    double fer = l->frames ? (double)l->failed_frames / (double)l->frames : 0;
    double im = l->frames ? (double)l->iterations / (double)l->frames : 0;
    if (json) {
        printf("\"frames\": %zu, \"failed_frames\": %zu, \"frame_error_rate\": %.6g, "
               "\"rate\": %.2f, \"frame_bits\": %zu, \"frame_key_bits\": %zu, "
               "\"syndrome_bits\": %zu, \"punctured_bits\": %zu, \"revealed_bits\": %zu, "
               "\"iterations_mean\": %.2f, \"iterations_max\": %u, \"messages\": %zu, ",
               l->frames, l->failed_frames, fer, l->rate_pct / 100.0, (size_t)128 * l->z,
               l->frame_key_bits, l->syndrome_bits, l->frames * l->punctured, l->revealed_bits, im,
               l->iter_max, l->messages);
        return;
    }
    printf("  LDPC: %zu frames of %zu bits (rate %.2f, %zu key bits, %zu punctured, %zu "
           "shortened), %zu failed (FER %.3g)\n", l->frames, (size_t)128 * l->z,
           l->rate_pct / 100.0, l->frame_key_bits, l->punctured, l->shortened, l->failed_frames,
           fer);
    printf("  leak = %zu syndrome bits - %zu punctured + %zu revealed = %zu bits; iterations "
           "mean %.1f, max %u; %zu messages\n", l->syndrome_bits, l->frames * l->punctured,
           l->revealed_bits, l->leak_bits, im, l->iter_max, l->messages);
}

/* head: JSON fields to put first (each followed by ", "), or "". */
static void kagi__print(const kagi_cli_cmd *cmd, const kagi_distill_report *r, int ok,
                        const char *head)
{
    const char *stage[4] = {"estimate", "reconcile", "verify", "amplify"};
    size_t sbits[4] = {r->sifted_bits, r->reconciled_bits, r->reconciled_bits, r->reconciled_bits};
    int ldpc = r->method == KAGI_RECONCILE_LDPC;
    size_t corrected = ldpc ? r->ldpc.corrected : r->cascade.corrected;
    size_t trips = ldpc ? r->ldpc.round_trips : r->cascade.channel_uses;
    if (kagi_cli_flag(cmd, "json")) {
        printf("{%s\"sifted_bits\": %zu, \"sample_bits\": %zu, \"sample_errors\": %zu, "
               "\"qber\": %.6f, \"qber_upper\": %.6f, \"reconcile\": {\"method\": \"%s\", ",
               head, r->sifted_bits, r->sample_bits, r->sample_errors, r->qber, r->qber_upper,
               ldpc ? "ldpc" : "cascade");
        if (ldpc) kagi__print_ldpc(&r->ldpc, 1);
        printf("\"bits\": %zu, "
               "\"leak_bits\": %zu, \"errors_corrected\": %zu, \"efficiency\": %.4f, "
               "\"channel_uses\": %zu}, \"verify\": {\"ok\": %s, \"tag_bits\": %u, "
               "\"eps_cor\": %.3g}, \"auth_bits_consumed\": %zu, \"final_bits\": %zu, "
               "\"net_bits\": %lld, \"throughput_mbps\": {",
               r->reconciled_bits, r->leak_bits, corrected, r->efficiency,
               trips, r->verify_ok ? "true" : "false", r->verify_tag_bits,
               r->eps_cor, r->auth_bits_consumed, ok ? r->final_bits : 0,
               (long long)(ok ? r->final_bits : 0) - (long long)r->auth_bits_consumed);
        for (int i = 0; i < 4; i++)
            printf("%s\"%s\": %.1f", i ? ", " : "", stage[i], kagi__mbps(sbits[i], r->seconds[i]));
        printf("}, \"seconds\": {");
        for (int i = 0; i < 4; i++) printf("%s\"%s\": %.9f", i ? ", " : "", stage[i], r->seconds[i]);
        printf("}, \"cpu_seconds\": {");
        for (int i = 0; i < 4; i++) printf("%s\"%s\": %.9f", i ? ", " : "", stage[i], r->cpu_seconds[i]);
        printf("}}\n");
        return;
    }
    printf("sifted %zu bits, sample %zu bits with %zu errors: QBER %.3f%% (upper bound %.3f%%)\n",
           r->sifted_bits, r->sample_bits, r->sample_errors, 100 * r->qber, 100 * r->qber_upper);
    printf("reconciled %zu bits%s: %zu errors corrected, %zu %s disclosed, f = %.4f, "
           "%zu round trips\n", r->reconciled_bits, ldpc ? " by LDPC" : "", corrected,
           r->leak_bits, ldpc ? "bits" : "parity bits", r->efficiency, trips);
    if (ldpc) kagi__print_ldpc(&r->ldpc, 0);
    printf("verified with a %u-bit tag (eps_cor %.2g): %s\n", r->verify_tag_bits, r->eps_cor,
           r->verify_ok ? "keys equal" : "MISMATCH");
    printf("authentication: %zu secret bits spent on message tags\n", r->auth_bits_consumed);
    if (ok) {
        long long net = (long long)r->final_bits - (long long)r->auth_bits_consumed;
        printf("final key: %zu bits (%lld after replacing the authentication key spent)\n",
               r->final_bits, net);
        if (net <= 0)
            fprintf(stderr, "kagi %s: warning: this block made less key than its authentication "
                            "spent; distil larger blocks\n", cmd->name);
    }
    printf("throughput:");
    for (int i = 0; i < 4; i++)
        printf(" %s %.1f Mbit/s%s", stage[i], kagi__mbps(sbits[i], r->seconds[i]), i < 3 ? "," : "\n");
    /* CPU over wall time: how many cores each stage kept busy */
    printf("cores busy (this process):");
    for (int i = 0; i < 4; i++)
        printf(" %s %.2f%s", stage[i], r->seconds[i] > 0 ? r->cpu_seconds[i] / r->seconds[i] : 0.0,
               i < 3 ? "," : "\n");
}

static int kagi__method(kagi_cli_cmd *cmd, kagi_distill_params *p)
{
    const char *m = kagi_cli_get(cmd, "method");
    if (!m || strcmp(m, "cascade") == 0) p->method = KAGI_RECONCILE_CASCADE;
    else if (strcmp(m, "ldpc") == 0) p->method = KAGI_RECONCILE_LDPC;
    else return kagi_cli_usage_error(cmd, "--method: unknown method '%s' (known: cascade, ldpc)", m);
    unsigned nt = 0;
    int rc = kagi_cli_ldpc_f(cmd, p->method == KAGI_RECONCILE_LDPC, &p->ldpc.f_start);
    if (rc || (rc = kagi_cli_threads(cmd, &nt))) return rc;
    /* Bob decodes on all of them; with --role each party amplifies on
     * all, in one process each on half (both run at once). 0: the
     * library's defaults, which share the CPUs online the same way. */
    p->ldpc.threads = nt;
    p->amplify_threads = kagi_cli_get(cmd, "role") ? nt : (nt + 1) / 2;
    return KAGI_EXIT_OK;
}

static int kagi__params(kagi_cli_cmd *cmd, kagi_distill_params *p, size_t *n)
{
    int rc;
    memset(p, 0, sizeof *p);
    if (!kagi_cli_get(cmd, "bits"))
        return kagi_cli_usage_error(cmd, "missing required option '--bits N'");
    if ((rc = kagi_cli_size(cmd, "bits", 1, n)) ||
        (rc = kagi_cli_double(cmd, "eps-sec", 0, 1, &p->eps_sec)) ||
        (rc = kagi_cli_double(cmd, "eps-cor", 0, 1, &p->eps_cor)) ||
        (rc = kagi_cli_size(cmd, "sample-bits", 1, &p->sample_bits)) ||
        (rc = kagi__method(cmd, p)))
        return rc;
    if (p->sample_bits && p->sample_bits >= *n)
        return kagi_cli_usage_error(cmd, "--sample-bits %zu must be below --bits %zu",
                                    p->sample_bits, *n);
    return KAGI_EXIT_OK;
}

/* Both keys written or neither. */
static int kagi__write_pair(const char *pa, const kagi_bits *a, const char *pb, const kagi_bits *b)
{
    int e = kagi_bits_write_file(pa, a);
    if (!e) {
        e = kagi_bits_write_file(pb, b);
        if (e) unlink(pa);
    }
    return e;
}

/* The four files of a run in one process. */
static int kagi__need_files(const kagi_cli_cmd *cmd)
{
    static const char *const need[] = {"alice", "bob", "out-alice", "out-bob"};
    for (int i = 0; i < 4; i++)
        if (!kagi_cli_get(cmd, need[i]))
            return kagi_cli_usage_error(cmd, "missing required option '--%s FILE'", need[i]);
    return KAGI_EXIT_OK;
}

/* Both parties in this process, then both final keys written or neither.
 * *ra is Alice's report. */
static int kagi__distill_write(const kagi_cli_cmd *cmd, const kagi_bits *a, const kagi_bits *b,
                               const kagi_distill_params *p, kagi_distill_report *ra)
{
    kagi_bits *fa = NULL, *fb = NULL;
    kagi_distill_report rb;
    int e = kagi_distill_local(a, b, p, &fa, &fb, ra, &rb);
    if (!e && (fa->n != fb->n || !kagi_ct_equal(fa->w, fb->w, KAGI_WORDS(fa->n) * 8)))
        e = KAGI_ERR_VERIFY; /* cannot happen unless verification itself failed */
    if (!e) e = kagi__write_pair(kagi_cli_get(cmd, "out-alice"), fa, kagi_cli_get(cmd, "out-bob"), fb);
    kagi_bits_free(fa);
    kagi_bits_free(fb);
    return e;
}

static int kagi__local(kagi_cli_cmd *cmd)
{
    kagi_distill_params p;
    size_t n;
    int rc = kagi__params(cmd, &p, &n);
    if (rc || (rc = kagi__need_files(cmd))) return rc;
    kagi_bits *a = NULL, *b = NULL;
    kagi_distill_report ra;
    memset(&ra, 0, sizeof ra);
    int e = kagi_bits_read_file(kagi_cli_get(cmd, "alice"), n, &a);
    if (!e) e = kagi_bits_read_file(kagi_cli_get(cmd, "bob"), n, &b);
    if (!e) e = kagi__distill_write(cmd, a, b, &p, &ra);
    if (!e) kagi__print(cmd, &ra, 1, "");
    kagi_bits_free(a);
    kagi_bits_free(b);
    return e ? kagi_cli_fail(cmd, e) : KAGI_EXIT_OK;
}

/* Reads the whole pre-shared key file. */
static int kagi__auth_load(const char *path, kagi_bits **key)
{
    FILE *f = fopen(path, "rb");
    if (!f) return kagi_bits_read_file(path, 1, key); /* names the path and the cause */
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fclose(f);
    /* Two hash keys and a few tags at the very least. */
    if (sz < 128)
        return kagi__err(KAGI_ERR_SHORT, "%s: authentication key holds %ld bits, at least 1024 needed",
                         path, sz > 0 ? sz * 8 : 0L);
    return kagi_bits_read_file(path, (size_t)sz * 8, key);
}

/* Empties the key file before the first authenticated message: a crash can
 * lose authentication key but never make a pad serve twice. */
static int kagi__auth_reserve(const char *path)
{
    kagi_bits *none = NULL;
    int e = kagi_bits_new(&none, 0);
    if (!e) e = kagi_bits_write_file(path, none);
    kagi_bits_free(none);
    return e;
}

static int kagi__role(kagi_cli_cmd *cmd, const char *role)
{
    kagi_distill_params p;
    size_t n, timeout = 30;
    int rc = kagi__params(cmd, &p, &n);
    if (rc || (rc = kagi_cli_size(cmd, "timeout", 1, &timeout))) return rc;
    int alice = strcmp(role, "alice") == 0;
    if (!alice && strcmp(role, "bob") != 0)
        return kagi_cli_usage_error(cmd, "--role: expected alice or bob, got '%s'", role);
    const char *in = kagi_cli_get(cmd, alice ? "alice" : "bob");
    const char *out = kagi_cli_get(cmd, alice ? "out-alice" : "out-bob");
    const char *lis = kagi_cli_get(cmd, "listen"), *con = kagi_cli_get(cmd, "connect");
    const char *ak = kagi_cli_get(cmd, "auth-key");
    if (!in) return kagi_cli_usage_error(cmd, "--role %s needs '--%s FILE'", role, role);
    if (!out) return kagi_cli_usage_error(cmd, "--role %s needs '--out-%s FILE'", role, role);
    if (!ak) return kagi_cli_usage_error(cmd, "--role needs '--auth-key FILE'");
    if (!lis == !con) return kagi_cli_usage_error(cmd, "--role needs exactly one of --listen and --connect");
    kagi_bits *key = NULL, *auth = NULL, *final = NULL;
    kagi_keypool *ab = NULL, *ba = NULL;
    kagi_channel *ch = NULL;
    kagi_distill_report r;
    memset(&r, 0, sizeof r);
    int e = kagi_bits_read_file(in, n, &key);
    if (!e) e = kagi__auth_load(ak, &auth);
    size_t half = auth ? auth->n / 2 / 64 * 64 : 0;
    if (!e) e = kagi_keypool_new(&ab, auth->w, half);
    if (!e) e = kagi_keypool_new(&ba, auth->w + half / 64, half);
    if (!e) e = lis ? kagi_channel_tcp_listen(lis, (int)timeout, &ch)
                    : kagi_channel_tcp_connect(con, (int)timeout, &ch);
    if (!e) e = alice ? kagi_channel_auth(ch, ab, ba) : kagi_channel_auth(ch, ba, ab);
    if (!e) e = kagi__auth_reserve(ak); /* only once a peer is there */
    if (!e) e = alice ? kagi_distill_alice(ch, key, &p, &final, &r)
                      : kagi_distill_bob(ch, key, &p, &final, &r);
    if (!e) e = kagi_bits_write_file(out, final);
    if (ab && ba && !e) {
        /* Give back the authentication bits no message used, in the same
         * order on both sides: what is left of A->B, then of B->A. */
        kagi_bits *ra = NULL, *rb = NULL, *left = NULL;
        int e2 = kagi_keypool_remainder(ab, &ra);
        if (!e2) e2 = kagi_keypool_remainder(ba, &rb);
        if (!e2) e2 = kagi_bits_new(&left, ra->n + rb->n);
        for (size_t i = 0; !e2 && i < ra->n; i++) kagi_bits_set(left, i, kagi_bits_get(ra, i));
        for (size_t i = 0; !e2 && i < rb->n; i++) kagi_bits_set(left, ra->n + i, kagi_bits_get(rb, i));
        if (!e2) e2 = kagi_bits_write_file(ak, left);
        if (e2) fprintf(stderr, "kagi distill: warning: could not return unused authentication key: %s\n",
                        kagi_errdetail());
        kagi_bits_free(ra);
        kagi_bits_free(rb);
        kagi_bits_free(left);
    }
    if (!e) kagi__print(cmd, &r, 1, "");
    kagi_channel_free(ch);
    kagi_keypool_free(ab);
    kagi_keypool_free(ba);
    kagi_bits_free(auth);
    kagi_bits_free(key);
    kagi_bits_free(final);
    return e ? kagi_cli_fail(cmd, e) : KAGI_EXIT_OK;
}

static void kagi__print_raw(const kagi_cli_cmd *cmd, const kagi_sift_stats *st,
                            const kagi_decoy_bound *b, const kagi_distill_report *r, int ok)
{
    if (kagi_cli_flag(cmd, "json")) {
        char head[512];
        snprintf(head, sizeof head,
                 "\"pulses\": %llu, \"detections\": %llu, \"sifted_z\": %llu, "
                 "\"errors_z\": %llu, \"qber_z\": %.6f, \"decoy\": {\"s_x0\": %.1f, "
                 "\"s_x1\": %.1f, \"s_z1\": %.1f, \"v_z1\": %.1f, \"phi_x\": %.6f, "
                 "\"length_before_ec\": %.1f}, ",
                 (unsigned long long)st->pulses, (unsigned long long)st->detections,
                 (unsigned long long)st->sifted_z, (unsigned long long)st->errors_z, st->qber_z,
                 b->s_x0, b->s_x1, b->s_z1, b->v_z1, b->phi_x, b->length_before_ec);
        kagi__print(cmd, r, ok, head);
        return;
    }
    printf("raw: %llu pulses, %llu detections; %llu key-basis bits, %llu test-basis bits with "
           "%llu errors (QBER %.3f%%)\n",
           (unsigned long long)st->pulses, (unsigned long long)st->detections,
           (unsigned long long)st->sifted_x, (unsigned long long)st->sifted_z,
           (unsigned long long)st->errors_z, 100 * st->qber_z);
    printf("decoy states: at least %.0f vacuum and %.0f single-photon key bits, phase error "
           "rate at most %.3f%%, %.0f bits before error correction\n",
           b->s_x0, b->s_x1, 100 * b->phi_x, b->length_before_ec);
    kagi__print(cmd, r, ok, "");
}

/* --raw: sift the detection files, bound Eve's knowledge with the decoy
 * states, then run the pipeline on the key-basis bits. */
static int kagi__raw(kagi_cli_cmd *cmd)
{
    kagi_distill_params p;
    memset(&p, 0, sizeof p);
    int rc;
    if (kagi_cli_get(cmd, "bits"))
        return kagi_cli_usage_error(cmd, "--bits does not go with --raw: the key length comes "
                                         "from sifting");
    if (kagi_cli_get(cmd, "sample-bits"))
        return kagi_cli_usage_error(cmd, "--sample-bits does not go with --raw: the test basis "
                                         "is the sample");
    if ((rc = kagi_cli_double(cmd, "eps-sec", 0, 1, &p.eps_sec)) ||
        (rc = kagi_cli_double(cmd, "eps-cor", 0, 1, &p.eps_cor)) || (rc = kagi__method(cmd, &p)))
        return rc;
    if (!p.eps_sec) p.eps_sec = KAGI_EPS_SEC_DEFAULT; /* the bound needs them now */
    if (!p.eps_cor) p.eps_cor = KAGI_EPS_COR_DEFAULT;
    if ((rc = kagi__need_files(cmd))) return rc;
    kagi_bits *a = NULL, *b = NULL;
    kagi_sift_stats st;
    kagi_decoy_bound bound;
    kagi_distill_report ra;
    memset(&ra, 0, sizeof ra);
    memset(&bound, 0, sizeof bound);
    int e = kagi_sift_raw(kagi_cli_get(cmd, "alice"), kagi_cli_get(cmd, "bob"), &a, &b, &st);
    if (!e) e = kagi_decoy_bound_lim(&st.counts, p.eps_sec, p.eps_cor, &bound);
    if (!e && !(st.qber_z < 0.5))
        e = kagi__err(KAGI_ERR_NOKEY, "test-basis QBER %.1f%% (%llu errors in %llu bits): no "
                                      "secret key; nothing written", 100 * st.qber_z,
                      (unsigned long long)st.errors_z, (unsigned long long)st.sifted_z);
    if (!e) {
        p.decoy = 1;
        p.decoy_length = bound.length_before_ec;
        p.qber_hint = st.qber_z;
        e = kagi__distill_write(cmd, a, b, &p, &ra);
    }
    if (!e) kagi__print_raw(cmd, &st, &bound, &ra, 1);
    kagi_bits_free(a);
    kagi_bits_free(b);
    return e ? kagi_cli_fail(cmd, e) : KAGI_EXIT_OK;
}

static int kagi__run(kagi_cli_cmd *cmd)
{
    const char *role = kagi_cli_get(cmd, "role");
    if (role && kagi_cli_flag(cmd, "raw"))
        return kagi_cli_usage_error(cmd, "--raw runs both parties in one process, not with --role");
    if (role) return kagi__role(cmd, role);
    if (kagi_cli_flag(cmd, "raw")) return kagi__raw(cmd);
    if (kagi_cli_get(cmd, "listen") || kagi_cli_get(cmd, "connect") || kagi_cli_get(cmd, "auth-key"))
        return kagi_cli_usage_error(cmd, "--listen, --connect and --auth-key need --role");
    return kagi__local(cmd);
}

kagi_cli_cmd kagi_cmd_distill = {
    "distill", "the whole pipeline: estimate, reconcile, verify, amplify",
    "--alice A --bob B --bits N --out-alice FA --out-bob FB [--method cascade|ldpc]\n"
    "                    [--eps-sec E] [--eps-cor E] [--json]\n"
    "       kagi distill --raw --alice RA --bob RB --out-alice FA --out-bob FB [...]\n"
    "       kagi distill --role alice|bob --listen|--connect HOST:PORT --auth-key F\n"
    "                    --alice A --out-alice FA | --bob B --out-bob FB --bits N [...]",
    "In one process Alice and Bob run in two threads over an in-memory channel\n"
    "with a fresh random authentication key. With --role each runs in its own\n"
    "process over TCP; both read the same pre-shared --auth-key file, whose\n"
    "first half authenticates Alice's messages and second half Bob's. The\n"
    "file is emptied before the run and rewritten with the unused bits after\n"
    "a successful one, so no authentication bit is ever used twice.\n"
    "With --raw the inputs are raw detection records (kagi link simulate,\n"
    "docs/raw-format.md): they are sifted, the test basis bounds the phase\n"
    "error with two decoy states (Lim et al. 2014, docs/keyrate.md), and the\n"
    "key-basis bits are distilled with that bound as the final length.\n"
    "--method ldpc reconciles with rate-adaptive LDPC codes (frames of up to\n"
    "2^20 bits, one syndrome message per batch of frames, blind reveals for\n"
    "frames Bob cannot decode); a frame still undecoded after its reveals\n"
    "fails the run (docs/ldpc.md).\n"
    "Exit 3 with no key file when the QBER leaves no key, reconciliation or\n"
    "verification fails or a message fails authentication.",
    kagi__opts, kagi__run};
