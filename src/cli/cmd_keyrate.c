/* Placeholder: being written. */
#include "cli.h"
static int kagi__run_keyrate(kagi_cli_cmd *c) { (void)c; return KAGI_EXIT_FAIL; }
static kagi_cli_opt kagi__opts_keyrate[] = {{NULL}};
kagi_cli_cmd kagi_cmd_keyrate = {"keyrate", "(being written)", "", NULL, kagi__opts_keyrate, kagi__run_keyrate};
