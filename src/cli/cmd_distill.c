/* placeholder until the command lands */
#include "cli.h"
static kagi_cli_opt kagi__opts[] = {{NULL}};
static int kagi__run(kagi_cli_cmd *cmd) { (void)cmd; return KAGI_EXIT_FAIL; }
kagi_cli_cmd kagi_cmd_distill = {"distill", "not yet", "", NULL, kagi__opts, kagi__run};
