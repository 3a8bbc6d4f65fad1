/* The kagi command: dispatch to subcommands, each thin over the library. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "kagi/version.h"

static kagi_cli_cmd *const kagi__cmds[] = {
    &kagi_cmd_keyrate, &kagi_cmd_link, &kagi_cmd_distill, &kagi_cmd_reconcile, &kagi_cmd_amplify,
    &kagi_cmd_pair, NULL,
};

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
        int rc = kagi_cli_parse(c, argc - 2, argv + 2);
        if (rc >= 0) return rc;
        return c->run(c);
    }
    fprintf(stderr, "kagi: unknown command '%s' (see 'kagi help')\n", name);
    return KAGI_EXIT_USAGE;
}
