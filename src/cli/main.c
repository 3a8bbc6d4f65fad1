/* The kagi command: dispatch to subcommands, each thin over the library. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "kagi/version.h"

static kagi_cli_cmd *const kagi__cmds[] = {
    &kagi_cmd_keyrate, &kagi_cmd_link, &kagi_cmd_distill, &kagi_cmd_reconcile, &kagi_cmd_amplify,
    &kagi_cmd_pair, &kagi_cmd_orbit, &kagi_cmd_pass, &kagi_cmd_sim, &kagi_cmd_kme, &kagi_cmd_testbed, NULL,
};

/* Commands whose options follow a required word ("kagi link simulate"). */
static const struct {
    const kagi_cli_cmd *cmd;
    const char *word;
} kagi__subs[] = {{&kagi_cmd_link, "simulate"}};

static const char *kagi__sub_of(const kagi_cli_cmd *c)
{
    for (size_t i = 0; i < sizeof kagi__subs / sizeof kagi__subs[0]; i++)
        if (kagi__subs[i].cmd == c) return kagi__subs[i].word;
    return NULL;
}

static void kagi__usage(FILE *f)
{
    fprintf(f, "kagi %s: quantum key distribution toolkit\n\n"
               "usage: kagi COMMAND [options]\n\ncommands:\n", KAGI_VERSION);
    for (int i = 0; kagi__cmds[i]; i++)
        fprintf(f, "  %-12s %s\n", kagi__cmds[i]->name, kagi__cmds[i]->summary);
    fprintf(f, "  %-12s %s\n  %-12s %s\n\n'kagi COMMAND --help' shows a command's options.\n",
            "help", "show this list", "version", "print the version");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        kagi__usage(stderr);
        return KAGI_EXIT_USAGE;
    }
    const char *name = argv[1];
    if (!strcmp(name, "help") || !strcmp(name, "--help") || !strcmp(name, "-h")) {
        if (argc > 2) {
            for (int i = 0; kagi__cmds[i]; i++)
                if (!strcmp(kagi__cmds[i]->name, argv[2])) {
                    kagi_cli_help(kagi__cmds[i]);
                    return KAGI_EXIT_OK;
                }
            fprintf(stderr, "kagi: unknown command '%s' (see 'kagi help')\n", argv[2]);
            return KAGI_EXIT_USAGE;
        }
        kagi__usage(stdout);
        return KAGI_EXIT_OK;
    }
    if (!strcmp(name, "version") || !strcmp(name, "--version")) {
        printf("kagi %s\n", KAGI_VERSION);
        return KAGI_EXIT_OK;
    }
    for (int i = 0; kagi__cmds[i]; i++) {
        kagi_cli_cmd *c = kagi__cmds[i];
        if (strcmp(c->name, name) != 0) continue;
        int skip = 0;
        const char *sub = kagi__sub_of(c);
        if (sub) {
            const char *w = argc > 2 ? argv[2] : "";
            if (!strcmp(w, "--help") || !strcmp(w, "-h")) {
                kagi_cli_help(c);
                return KAGI_EXIT_OK;
            }
            if (strcmp(w, sub) != 0) {
                if (*w == '-' || !*w)
                    fprintf(stderr, "kagi %s: missing subcommand '%s'%s%s%s", c->name, sub,
                            *w ? " before '" : "", w, *w ? "'" : "");
                else
                    fprintf(stderr, "kagi %s: unknown subcommand '%s'", c->name, w);
                fprintf(stderr, " (usage: kagi %s %s ...; see 'kagi %s --help')\n", c->name, sub,
                        c->name);
                return KAGI_EXIT_USAGE;
            }
            skip = 1;
        }
        int rc = kagi_cli_parse(c, argc - 2 - skip, argv + 2 + skip);
        if (rc >= 0) return rc;
        return c->run(c);
    }
    fprintf(stderr, "kagi: unknown command '%s' (see 'kagi help')\n", name);
    return KAGI_EXIT_USAGE;
}
