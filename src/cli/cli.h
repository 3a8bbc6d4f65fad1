/* Shared pieces of the kagi command: option parsing and number parsing.
 * Exit codes: 0 done, 1 runtime failure, 2 usage error, 3 no key made
 * (QBER too high, verification failed, MAC failure). */
#ifndef KAGI_CLI_H
#define KAGI_CLI_H

#include <stddef.h>
#include <stdint.h>

enum { KAGI_EXIT_OK = 0, KAGI_EXIT_FAIL = 1, KAGI_EXIT_USAGE = 2, KAGI_EXIT_NOKEY = 3 };

/* An option given as a bare word ("kagi sim SCENARIO"): set required to
 * this; bare words fill such options in order. */
enum { KAGI_CLI_POSITIONAL = 2 };

typedef struct kagi_cli_opt {
    const char *name;     /* long name without "--" */
    const char *arg;      /* argument placeholder, NULL for a flag */
    const char *help;
    int required;         /* 1 required; KAGI_CLI_POSITIONAL: a bare word, required */
    const char *value;    /* set by parsing; "1" for a given flag */
} kagi_cli_opt;

typedef struct kagi_cli_cmd {
    const char *name;
    const char *summary;
    const char *usage;    /* one line after "kagi NAME " */
    const char *details;  /* paragraph printed by --help, may be NULL */
    kagi_cli_opt *opts;   /* terminated by {NULL} */
    int (*run)(struct kagi_cli_cmd *cmd);
} kagi_cli_cmd;

/* Parses argv into cmd->opts. Returns -1 to proceed, or an exit code
 * (0 after --help, 2 after a one-line error naming the option). */
int kagi_cli_parse(kagi_cli_cmd *cmd, int argc, char **argv);
void kagi_cli_help(const kagi_cli_cmd *cmd);
const char *kagi_cli_get(const kagi_cli_cmd *cmd, const char *name);
int kagi_cli_flag(const kagi_cli_cmd *cmd, const char *name);

/* Number parsers: print "kagi CMD: --OPT: ..." and return 2 on bad input. */
int kagi_cli_size(const kagi_cli_cmd *cmd, const char *opt, size_t min, size_t *out);
/* A number in (lo, hi); kagi_cli_double_from takes [lo, hi). */
int kagi_cli_double(const kagi_cli_cmd *cmd, const char *opt, double lo, double hi, double *out);
int kagi_cli_double_from(const kagi_cli_cmd *cmd, const char *opt, double lo, double hi,
                         double *out);
/* Prints "kagi CMD: <detail or message>" for a library failure; returns
 * the exit code that fits the error (3 for no-key outcomes, else 1). */
int kagi_cli_fail(const kagi_cli_cmd *cmd, int rc);

/* fn runs on SIGINT, SIGTERM and SIGHUP (commands that run until stopped). */
void kagi_cli_on_stop(void (*fn)(int));
/* The usage error path: "kagi CMD: message", returns 2. */
int kagi_cli_usage_error(const kagi_cli_cmd *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* A number in [lo, hi], each end open unless *_incl; absent: out kept. */
int kagi_cli_range(const kagi_cli_cmd *cmd, const char *opt, double lo, int lo_incl, double hi,
                   int hi_incl, double *out);

/* The help of --ldpc-f, the same in reconcile and distill. */
#define KAGI_CLI_LDPC_F_HELP                                                                      \
    "with --method ldpc: the efficiency the code is chosen for, auto (the most efficient start " \
    "that decodes at once) or F in (1, 2]: higher is faster and leaks more (docs/ldpc.md)"

/* --ldpc-f auto|F of reconcile and distill into *f: 0 (automatic, also
 * when absent) or F in (1, 2]; a usage error without --method ldpc. */
int kagi_cli_ldpc_f(const kagi_cli_cmd *cmd, int ldpc, double *f);

/* --threads N of reconcile and distill into *n: N in [1, 64], or 0 when
 * absent (the library's default: the CPUs online, at most 64). */
int kagi_cli_threads(const kagi_cli_cmd *cmd, unsigned *n);

/* The fibre-link options (KAGI_CLI_LINK_OPTS) into l, over its defaults;
 * p_x_below_1 refuses --p-x 1 (finite keys need a test basis). The decoy
 * ordering mu1 > mu2 + mu3, mu2 > mu3 is checked apart, where it applies. */
struct kagi_link;
int kagi_cli_link(const kagi_cli_cmd *cmd, struct kagi_link *l, int p_x_below_1);
int kagi_cli_link_decoys(const kagi_cli_cmd *cmd, const struct kagi_link *l);
#define KAGI_CLI_LINK_OPTS                                                                  \
    {"fiber-loss", "DB_PER_KM", "fibre attenuation, dB/km (default 0.2)", 0, NULL},         \
    {"extra-loss", "DB", "insertion loss before the detectors, dB (default 0)", 0, NULL},   \
    {"detector-efficiency", "X",                                                           \
     "Bob's whole transmittance times detection efficiency (default 0.1)", 0, NULL},       \
    {"dark-count", "Y0",                                                                   \
     "click probability per pulse without light, all detectors (default 1.2e-6)", 0, NULL},\
    {"afterpulse", "P", "probability a click brings an extra random click (default 0.04)", \
     0, NULL},                                                                             \
    {"dead-time", "SECONDS", "non-paralysable detector dead time (default 0)", 0, NULL},   \
    {"misalignment", "ED", "probability a detected photon flips, e_d (default 0.005)", 0,  \
     NULL},                                                                                \
    {"mu", "M", "signal intensity, photons per pulse (default 0.45)", 0, NULL},            \
    {"decoy-mu", "NU", "decoy intensity (default 0.2)", 0, NULL},                          \
    {"vacuum-mu", "W", "weak-vacuum intensity (default 2e-4)", 0, NULL},                   \
    {"p-mu", "PS,PD",                                                                      \
     "probabilities of signal and decoy; the vacuum gets the rest (default 0.4,0.4)", 0,   \
     NULL},                                                                                \
    {"p-x", "P", "probability of the key basis on both sides (default 0.85)", 0, NULL},    \
    {"clock", "HZ", "pulse rate (default 1e9)", 0, NULL}

extern kagi_cli_cmd kagi_cmd_amplify, kagi_cmd_reconcile, kagi_cmd_distill,
    kagi_cmd_pair, kagi_cmd_keyrate, kagi_cmd_link, kagi_cmd_orbit, kagi_cmd_pass, kagi_cmd_sim, kagi_cmd_kme,
    kagi_cmd_testbed;

#endif
