/* Option parsing for every subcommand: --name VALUE, --name=VALUE, flags. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "kagi/error.h"

int kagi_cli_usage_error(const kagi_cli_cmd *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "kagi %s: ", cmd->name);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (see 'kagi %s --help')\n", cmd->name);
    return KAGI_EXIT_USAGE;
}

void kagi_cli_help(const kagi_cli_cmd *cmd)
{
    printf("kagi %s: %s\n\nusage: kagi %s %s\n", cmd->name, cmd->summary, cmd->name, cmd->usage);
    if (cmd->details) printf("\n%s\n", cmd->details);
    printf("\noptions:\n");
    for (kagi_cli_opt *o = cmd->opts; o->name; o++) {
        char left[64];
        if (o->required == KAGI_CLI_POSITIONAL)
            snprintf(left, sizeof left, "%s", o->arg);
        else
            snprintf(left, sizeof left, "--%s%s%s", o->name, o->arg ? " " : "", o->arg ? o->arg : "");
        printf("  %-26s %s%s\n", left, o->help, o->required ? " (required)" : "");
    }
    printf("  %-26s %s\n", "--help", "show this help");
}

static kagi_cli_opt *kagi__find(kagi_cli_cmd *cmd, const char *name, size_t len)
{
    for (kagi_cli_opt *o = cmd->opts; o->name; o++)
        if (strlen(o->name) == len && memcmp(o->name, name, len) == 0) return o;
    return NULL;
}

int kagi_cli_parse(kagi_cli_cmd *cmd, int argc, char **argv)
{
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            kagi_cli_help(cmd);
            return KAGI_EXIT_OK;
        }
        if (strncmp(a, "--", 2) != 0) {
            kagi_cli_opt *o = cmd->opts;
            while (o->name && !(o->required == KAGI_CLI_POSITIONAL && !o->value)) o++;
            if (!o->name) return kagi_cli_usage_error(cmd, "unexpected argument '%s'", a);
            o->value = a;
            continue;
        }
        const char *eq = strchr(a + 2, '=');
        size_t len = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
        kagi_cli_opt *o = kagi__find(cmd, a + 2, len);
        if (!o) return kagi_cli_usage_error(cmd, "unknown option '%.*s'", (int)len + 2, a);
        if (!o->arg) {
            if (eq) return kagi_cli_usage_error(cmd, "option '--%s' takes no value", o->name);
            o->value = "1";
            continue;
        }
        if (o->arg[0] == '[') {
            /* an optional HOST:PORT: "--serve", "--serve=ADDR:PORT" or
               "--serve ADDR:PORT" (a next word with a colon, not an option) */
            if (eq) {
                if (!eq[1]) return kagi_cli_usage_error(cmd, "option '--%s=' needs a value", o->name);
                o->value = eq + 1;
            } else if (i + 1 < argc && strncmp(argv[i + 1], "--", 2) != 0 && strchr(argv[i + 1], ':')) {
                o->value = argv[++i];
            } else {
                o->value = "";
            }
            continue;
        }
        if (eq) {
            o->value = eq + 1;
        } else {
            if (i + 1 >= argc)
                return kagi_cli_usage_error(cmd, "option '--%s' needs a value %s", o->name, o->arg);
            o->value = argv[++i];
        }
    }
    for (kagi_cli_opt *o = cmd->opts; o->name; o++)
        if (o->required == KAGI_CLI_POSITIONAL && !o->value)
            return kagi_cli_usage_error(cmd, "missing %s", o->arg);
        else if (o->required && !o->value)
            return kagi_cli_usage_error(cmd, "missing required option '--%s %s'", o->name,
                                        o->arg ? o->arg : "");
    return -1;
}

const char *kagi_cli_get(const kagi_cli_cmd *cmd, const char *name)
{
    for (kagi_cli_opt *o = cmd->opts; o->name; o++)
        if (strcmp(o->name, name) == 0) return o->value;
    return NULL;
}

int kagi_cli_flag(const kagi_cli_cmd *cmd, const char *name)
{
    return kagi_cli_get(cmd, name) != NULL;
}

int kagi_cli_size(const kagi_cli_cmd *cmd, const char *opt, size_t min, size_t *out)
{
    const char *s = kagi_cli_get(cmd, opt);
    if (!s) return KAGI_EXIT_OK;
    char *end;
    errno = 0;
    /* Accept plain digits, or scientific form like 1e6 for bit counts. */
    unsigned long long v = strtoull(s, &end, 10);
    if (*end == 'e' || *end == 'E' || *end == '.') {
        double d = strtod(s, &end);
        if (*end || !(d >= 0) || d > 1e18 || d != floor(d))
            return kagi_cli_usage_error(cmd, "--%s: '%s' is not a whole number", opt, s);
        v = (unsigned long long)d;
    } else if (*end || s[0] == '-' || s[0] == '\0' || errno) {
        return kagi_cli_usage_error(cmd, "--%s: '%s' is not a whole number", opt, s);
    }
    if (v < min) return kagi_cli_usage_error(cmd, "--%s: must be at least %zu, got %s", opt, min, s);
    *out = (size_t)v;
    return KAGI_EXIT_OK;
}

static int kagi__double(const kagi_cli_cmd *cmd, const char *opt, double lo, int lo_incl, double hi,
                        double *out)
{
    const char *s = kagi_cli_get(cmd, opt);
    if (!s) return KAGI_EXIT_OK;
    char *end;
    double d = strtod(s, &end);
    if (*end || end == s || !isfinite(d))
        return kagi_cli_usage_error(cmd, "--%s: '%s' is not a number", opt, s);
    if (!((lo_incl ? d >= lo : d > lo) && d < hi))
        return kagi_cli_usage_error(cmd, "--%s: must lie in %s%g, %g), got %s", opt,
                                    lo_incl ? "[" : "(", lo, hi, s);
    *out = d;
    return KAGI_EXIT_OK;
}

int kagi_cli_double(const kagi_cli_cmd *cmd, const char *opt, double lo, double hi, double *out)
{
    return kagi__double(cmd, opt, lo, 0, hi, out);
}

int kagi_cli_double_from(const kagi_cli_cmd *cmd, const char *opt, double lo, double hi,
                         double *out)
{
    return kagi__double(cmd, opt, lo, 1, hi, out);
}

int kagi_cli_ldpc_f(const kagi_cli_cmd *cmd, int ldpc, double *f)
{
    const char *s = kagi_cli_get(cmd, "ldpc-f");
    *f = 0;
    if (!s) return KAGI_EXIT_OK;
    if (!ldpc) return kagi_cli_usage_error(cmd, "--ldpc-f goes with --method ldpc");
    if (strcmp(s, "auto") == 0) return KAGI_EXIT_OK;
    return kagi_cli_range(cmd, "ldpc-f", 1, 0, 2, 1, f);
}

int kagi_cli_threads(const kagi_cli_cmd *cmd, unsigned *n)
{
    size_t v = 0;
    int rc = kagi_cli_size(cmd, "threads", 1, &v);
    if (rc) return rc;
    if (v > 64) return kagi_cli_usage_error(cmd, "--threads: at most 64, got %zu", v);
    *n = (unsigned)v;
    return KAGI_EXIT_OK;
}

int kagi_cli_fail(const kagi_cli_cmd *cmd, int rc)
{
    const char *d = kagi_errdetail();
    fprintf(stderr, "kagi %s: %s\n", cmd->name, d[0] ? d : kagi_strerror(rc));
    if (rc == KAGI_ERR_NOKEY || rc == KAGI_ERR_VERIFY || rc == KAGI_ERR_AUTH ||
        rc == KAGI_ERR_RECONCILE)
        return KAGI_EXIT_NOKEY;
    if (rc == KAGI_ERR_ARG) return KAGI_EXIT_USAGE;
    return KAGI_EXIT_FAIL;
}

void kagi_cli_on_stop(void (*fn)(int))
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = fn;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
}
