/* Shared pieces of the kagi command: option parsing and number parsing.
 * Exit codes: 0 done, 1 runtime failure, 2 usage error, 3 no key made
 * (QBER too high, verification failed, MAC failure). */
#ifndef KAGI_CLI_H
#define KAGI_CLI_H

#include <stddef.h>
#include <stdint.h>

enum { KAGI_EXIT_OK = 0, KAGI_EXIT_FAIL = 1, KAGI_EXIT_USAGE = 2, KAGI_EXIT_NOKEY = 3 };

typedef struct kagi_cli_opt {
    const char *name;     /* long name without "--" */
    const char *arg;      /* argument placeholder, NULL for a flag */
    const char *help;
    int required;
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
/* The usage error path: "kagi CMD: message", returns 2. */
int kagi_cli_usage_error(const kagi_cli_cmd *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

extern kagi_cli_cmd kagi_cmd_amplify, kagi_cmd_reconcile, kagi_cmd_distill,
    kagi_cmd_pair, kagi_cmd_keyrate, kagi_cmd_link, kagi_cmd_orbit;

#endif
