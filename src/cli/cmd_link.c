/* Placeholder: being written. */
#include "cli.h"
static int kagi__run_link(kagi_cli_cmd *c) { (void)c; return KAGI_EXIT_FAIL; }
static kagi_cli_opt kagi__opts_link[] = {{NULL}};
kagi_cli_cmd kagi_cmd_link = {"link", "(being written)", "", NULL, kagi__opts_link, kagi__run_link};
