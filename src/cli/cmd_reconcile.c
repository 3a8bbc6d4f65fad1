/* kagi reconcile: Cascade or LDPC on a pair of key files, both parties
 * in-process. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "internal.h"
#include "kagi/cascade.h"
#include "kagi/error.h"
#include "kagi/estimate.h"
#include "kagi/ldpc.h"

static kagi_cli_opt kagi__opts[] = {
    {"alice", "FILE", "Alice's sifted key (bit file)", 1, NULL},
    {"bob", "FILE", "Bob's sifted key (bit file)", 1, NULL},
    {"bits", "N", "number of bits to reconcile", 1, NULL},
    {"method", "NAME", "reconciliation method: cascade (default) or ldpc", 0, NULL},
    {"threads", "N", "with --method ldpc: frames decoded at once (default: the CPUs online, at "
                     "most 64)", 0, NULL},
    {"ldpc-f", "auto|F", KAGI_CLI_LDPC_F_HELP, 0, NULL},
    {"qber", "Q", "expected QBER; default: estimated from a 5% sample", 0, NULL},
    {"out", "FILE", "write Bob's corrected key here", 0, NULL},
    {"frame-bits", "N", "bits per Cascade frame, a multiple of 4096 (default 1048576)", 0, NULL},
    {"json", NULL, "print the report as JSON", 0, NULL},
    {NULL, NULL, NULL, 0, NULL},
};


/* Estimate the QBER the way a real run would: from a public sample. */
static int kagi__estimate(const kagi_bits *a, const kagi_bits *b, double *q)
{
    size_t k = a->n / 20 < 64 ? (a->n < 64 ? a->n : 64) : a->n / 20;
    size_t *pos = malloc(k * sizeof *pos);
    if (!pos) return KAGI_ERR_NOMEM;
    int rc = kagi_sample_positions(0x6b616769u, a->n, k, pos);
    size_t e = 0;
    for (size_t i = 0; !rc && i < k; i++) e += kagi_bits_get(a, pos[i]) != kagi_bits_get(b, pos[i]);
    free(pos);
    *q = (double)e / (double)k;
    return rc;
}

/* LDPC: code and plan fitted to the key (frames of up to 2^20 bits), the
 * pipeline's defaults (f_start kagi_ldpc_f_auto_for(Q, n, 0), reveals of 0.02 n_key h(Q) up to 20
 * rounds) and --threads decoding threads. Bob's key is written only when every frame decoded. */
static int kagi__ldpc(kagi_cli_cmd *cmd, kagi_bits *a, kagi_bits *b, size_t n, double q,
                      double f_start, unsigned threads)
{
    kagi_ldpc_params p = {.qber = q < 1e-3 ? 1e-3 : q > 0.11 ? 0.11 : q, .threads = threads};
    p.f_start = f_start ? f_start : kagi_ldpc_f_auto_for(p.qber, n, 0);
    kagi_ldpc_code *c = NULL;
    kagi_ldpc_plan *pl = NULL;
    kagi_ldpc_stats st;
    memset(&st, 0, sizeof st);
    double t0 = kagi__now(), t1 = t0, t2 = t0;
    int e = kagi_ldpc_fit(n, p.qber, p.f_start, 0, 1, p.seed, &c, &pl);
    if (!e) {
        t1 = kagi__now();
        e = kagi_ldpc_reconcile_plan(pl, a, b, &p, &st);
        t2 = kagi__now();
    }
    kagi_ldpc_plan_free(pl);
    kagi_ldpc_code_free(c);
    if (e && e != KAGI_ERR_RECONCILE) return kagi_cli_fail(cmd, e);
    size_t residual = kagi_bits_hamming(a->w, b->w, n);
    double qa = (double)st.corrected / (double)n;
    double h = qa > 0 ? kagi_h2(qa) : 0;
    double f = h > 0 ? (double)st.leak_bits / ((double)n * h) : 0;
    double fer = st.frames ? (double)st.failed_frames / (double)st.frames : 0;
    double im = st.frames ? (double)st.iterations / (double)st.frames : 0;
    double secs = t2 - t1;
    if (kagi_cli_flag(cmd, "json")) {
        printf("{\"bits\": %zu, \"method\": \"ldpc\", \"qber_estimate\": %.6f, "
               "\"errors_corrected\": %zu, \"qber\": %.6f, \"leak_bits\": %zu, "
               "\"syndrome_bits\": %zu, \"punctured_bits\": %zu, \"revealed_bits\": %zu, "
               "\"efficiency\": %.4f, \"frames\": %zu, \"failed_frames\": %zu, "
               "\"frame_error_rate\": %.6g, \"rate\": %.2f, \"frame_bits\": %zu, "
               "\"frame_key_bits\": %zu, \"iterations_mean\": %.2f, \"iterations_max\": %u, "
               "\"messages\": %zu, \"residual_errors\": %zu, \"setup_seconds\": %.6f, "
               "\"seconds\": %.6f, \"throughput_mbps\": %.1f}\n",
               n, q, st.corrected, qa, st.leak_bits, st.syndrome_bits, st.frames * st.punctured,
               st.revealed_bits, f, st.frames, st.failed_frames, fer, st.rate_pct / 100.0,
               (size_t)128 * st.z, st.frame_key_bits, im, st.iter_max, st.messages, residual,
               t1 - t0, secs, (double)n / secs / 1e6);
    } else {
        printf("reconciled %zu bits by LDPC in %.3f s (%.1f Mbit/s; code and plan %.3f s)\n", n,
               secs, (double)n / secs / 1e6, t1 - t0);
        printf("  code              rate %.2f, %zu frames of %zu bits (%zu key bits, %zu punctured,"
               " %zu shortened)\n", st.rate_pct / 100.0, st.frames, (size_t)128 * st.z,
               st.frame_key_bits, st.punctured, st.shortened);
        printf("  errors corrected  %zu (QBER %.3f%%, estimated %.3f%%)\n", st.corrected,
               100 * qa, 100 * q);
        printf("  leak              %zu syndrome bits - %zu punctured + %zu revealed = %zu bits, "
               "efficiency f = %.4f\n", st.syndrome_bits, st.frames * st.punctured,
               st.revealed_bits, st.leak_bits, f);
        printf("  frames failed     %zu of %zu (FER %.3g)\n", st.failed_frames, st.frames, fer);
        printf("  iterations        mean %.1f, max %u; %zu messages from Alice\n", im, st.iter_max,
               st.messages);
        printf("  residual errors   %zu (known only because both keys are here)\n", residual);
    }
    if (e) {
        fprintf(stderr, "kagi reconcile: %zu of %zu LDPC frames could not be decoded after all "
                        "reveals; %s\n", st.failed_frames, st.frames,
                kagi_cli_get(cmd, "out") ? "nothing written" : "Bob's key is not corrected");
        return KAGI_EXIT_NOKEY;
    }
    if (kagi_cli_get(cmd, "out")) {
        e = kagi_bits_write_file(kagi_cli_get(cmd, "out"), b);
        if (e) return kagi_cli_fail(cmd, e);
    }
    return KAGI_EXIT_OK;
}

static int kagi__run(kagi_cli_cmd *cmd)
{
    size_t n = 0, frame = 0;
    double q = 0;
    int rc;
    if ((rc = kagi_cli_size(cmd, "bits", 1, &n)) || (rc = kagi_cli_size(cmd, "frame-bits", 4096, &frame)) ||
        (rc = kagi_cli_double(cmd, "qber", 0, 0.5, &q)))
        return rc;
    const char *m = kagi_cli_get(cmd, "method");
    int ldpc = m && strcmp(m, "ldpc") == 0;
    if (m && strcmp(m, "cascade") != 0 && !ldpc)
        return kagi_cli_usage_error(cmd, "--method: unknown method '%s' (known: cascade, ldpc)", m);
    double f_start = 0;
    unsigned threads = 0;
    if ((rc = kagi_cli_ldpc_f(cmd, ldpc, &f_start)) || (rc = kagi_cli_threads(cmd, &threads))) return rc;
    if (!ldpc && kagi_cli_get(cmd, "threads"))
        return kagi_cli_usage_error(cmd, "--threads goes with --method ldpc (Cascade runs on one)");
    kagi_bits *a = NULL, *b = NULL;
    int e = kagi_bits_read_file(kagi_cli_get(cmd, "alice"), n, &a);
    if (!e) e = kagi_bits_read_file(kagi_cli_get(cmd, "bob"), n, &b);
    if (!e && q == 0) e = kagi__estimate(a, b, &q);
    if (!e && q >= 0.25) {
        fprintf(stderr, "kagi reconcile: estimated QBER %.1f%% is too high to reconcile usefully\n",
                100 * q);
        kagi_bits_free(a);
        kagi_bits_free(b);
        return KAGI_EXIT_NOKEY;
    }
    if (!e && ldpc) {
        int rc2 = kagi__ldpc(cmd, a, b, n, q, f_start, threads);
        kagi_bits_free(a);
        kagi_bits_free(b);
        return rc2;
    }
    kagi_cascade_params p = {.qber = q > 1e-3 ? q : 1e-3, .frame_bits = frame, .seed = 1};
    kagi_cascade_stats st = {0};
    double t0 = kagi__now(), t1 = t0;
    if (!e) {
        e = kagi_cascade_run(a, b, &p, &st);
        t1 = kagi__now();
    }
    size_t residual = e ? 0 : kagi_bits_hamming(a->w, b->w, n);
    if (!e && kagi_cli_get(cmd, "out")) e = kagi_bits_write_file(kagi_cli_get(cmd, "out"), b);
    kagi_bits_free(a);
    kagi_bits_free(b);
    if (e) return kagi_cli_fail(cmd, e);
    double qa = (double)st.corrected / (double)n;
    double h = qa > 0 ? kagi_h2(qa) : 0;
    double f = h > 0 ? (double)st.leak_bits / ((double)n * h) : 0;
    double secs = t1 - t0;
    if (kagi_cli_flag(cmd, "json")) {
        printf("{\"bits\": %zu, \"method\": \"cascade\", \"qber_estimate\": %.6f, "
               "\"errors_corrected\": %zu, \"qber\": %.6f, \"leak_bits\": %zu, "
               "\"efficiency\": %.4f, \"channel_uses\": %zu, \"bytes_bob_to_alice\": %zu, "
               "\"bytes_alice_to_bob\": %zu, \"frames\": %zu, \"k1\": %u, "
               "\"residual_errors\": %zu, \"seconds\": %.6f, \"throughput_mbps\": %.1f}\n",
               n, q, st.corrected, qa, st.leak_bits, f, st.channel_uses, st.bytes_bob,
               st.bytes_alice, st.frames, st.k1, residual, secs, (double)n / secs / 1e6);
    } else {
        printf("reconciled %zu bits by Cascade in %.3f s (%.1f Mbit/s)\n", n, secs,
               (double)n / secs / 1e6);
        printf("  errors corrected  %zu (QBER %.3f%%, estimated %.3f%%)\n", st.corrected,
               100 * qa, 100 * q);
        printf("  parity bits       %zu disclosed, efficiency f = %.4f\n", st.leak_bits, f);
        printf("  channel uses      %zu round trips, %zu + %zu bytes\n", st.channel_uses,
               st.bytes_bob, st.bytes_alice);
        printf("  residual errors   %zu (known only because both keys are here)\n", residual);
    }
    return KAGI_EXIT_OK;
}

kagi_cli_cmd kagi_cmd_reconcile = {
    "reconcile", "correct Bob's key to Alice's by Cascade or LDPC and report the leakage",
    "--alice A --bob B --bits N [--method cascade|ldpc] [--qber Q] [--out FILE] [--json]",
    "Runs both parties in one process over an in-memory channel. The report\n"
    "counts the parity bits Alice disclosed (leak_bits), the efficiency\n"
    "f = leak_bits / (N h(QBER)) with the QBER of the errors corrected, and the\n"
    "round trips. Residual errors are printed because both keys are at hand;\n"
    "in a real run only verification (kagi distill) finds them.\n"
    "--method ldpc: rate-adaptive QC-LDPC syndromes with blind reveals\n"
    "(docs/ldpc.md); the report adds the frames, frame error rate, decoder\n"
    "iterations and messages, and the leak (syndrome bits - punctured bits +\n"
    "revealed bits). If a frame cannot be decoded, exit 3 and no --out file.",
    kagi__opts, kagi__run};
