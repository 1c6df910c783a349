/* SPDX-License-Identifier: MIT */
/*
 * pvabi - inspect and manage a Xen host or the embedded hypervisor.
 *
 * usage: pvabi [--platform SPEC] [--json] COMMAND [ARGS...]
 *
 * This file: the global options, the command table and dispatch, help.
 * Each command lives in its own file; docs/cli.md is the manual.
 */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#define DOMAIN_OPS                                                                                 \
    "Options (every command): --platform SPEC, --json, --help.\n"                                  \
    "DOMID: a domain id (0..32751); none: every domain.\n"

static const struct cli_cmd commands[] = {
    {
        .name = "info",
        .path = "info",
        .args = "",
        .summary = "Show the host and the hypervisor, as `xl info` does.",
        .help = "Prints \"key : value\" lines with xl's keys (host, release, version, machine,\n"
                "nr_cpus, max_cpu_id, nr_nodes, cores_per_socket, threads_per_core, cpu_mhz,\n"
                "hw_caps, virt_caps, total_memory, free_memory (MiB), xen_major, xen_minor,\n"
                "xen_extra, xen_version, xen_caps, xen_pagesize, xen_changeset) and\n"
                "platform (xen or local).  --json: one object with the same keys.\n"
                "What cannot be read (e.g. physinfo without privilege) is left out and the\n"
                "command exits 1 after printing the rest.\n",
        .run = cli_info,
    },
    {
        .name = "list",
        .path = "list",
        .args = "[DOMID...]",
        .summary = "List domains, as `xl list` does.",
        .help = "Columns: Name, ID, Mem (MiB), VCPUs, State (r running, b blocked,\n"
                "p paused, s shut down, then the shutdown reason (- poweroff, r reboot,\n"
                "s suspend, c crash, w watchdog, S soft reset), d dying), Time(s) (CPU time).\n"
                "A domain without a name in the store shows as \"(null)\", as in xl.\n"
                "--json: an array of objects.\n" DOMAIN_OPS,
        .run = cli_list,
    },
    {
        .name = "store",
        .path = "store",
        .args = "ls|read|write|rm|watch ...",
        .summary = "Read and change the store (xenstore).",
        .help = "Paths are absolute, or relative to the privileged domain's home.\n",
        .sub = cli_store_cmds,
    },
    {
        .name = "channels",
        .path = "channels",
        .args = "[DOMID...]",
        .summary = "List the event channels in use, with both ends.",
        .help = "Columns: Domain, Port, State (unbound, interdomain, ipi, virq:N, pirq:N),\n"
                "Remote-dom, Remote-port (\"-\" where the state has none).  A port whose peer\n"
                "is gone is unbound, offered to that peer again (Xen's rebind).\n"
                "--json: an array of objects.\n" DOMAIN_OPS,
        .run = cli_channels,
    },
    {
        .name = "grants",
        .path = "grants",
        .args = "[DOMID...]",
        .summary = "List the live grants, with both ends (local platform only).",
        .help = "Columns: Granter, Ref, Grantee, Access (rw or ro), Maps (live mappings by\n"
                "the grantee), State (active; dying: the granter is gone, the grant stays\n"
                "while mapped).  Xen has no hypercall that lists grants: on the xen\n"
                "platform the command fails.  --json: an array of objects.\n" DOMAIN_OPS,
        .run = cli_grants,
    },
    {
        .name = "hv",
        .path = "hv",
        .args = "start|stop|status ...",
        .summary = "Start, stop or check the embedded hypervisor (pvabi-hv).",
        .help = "The socket: --socket PATH, else the one --platform local:PATH names, else\n"
                "$PVABI_LOCAL_SOCKET, else $XDG_RUNTIME_DIR/pvabi/hv.sock, else\n"
                "/tmp/pvabi-UID/hv.sock (as pvabi_open()).\n",
        .sub = cli_hv_cmds,
    },
    {
        .name = "device",
        .path = "device",
        .args = "add|rm|ls ...",
        .summary = "Create, remove and list split devices (the toolstack step).",
        .help = "A device is two store directories: the frontend's\n"
                "/local/domain/FRONTEND/device/TYPE/DEVID and the backend's\n"
                "/local/domain/BACKEND/backend/TYPE/FRONTEND/DEVID (docs/xenbus.md).\n",
        .sub = cli_device_cmds,
    },
    {
        .name = "block-attach",
        .path = "block-attach",
        .args = "FRONTEND IMAGE [--vdev xvdX|DEVID] [--ro] [--backend DOMID]",
        .summary = "Give a domain a disk image (a vbd), as `xl block-attach`.",
        .help = "Backend nodes: params = IMAGE's absolute path, mode = w (r with --ro),\n"
                "type = file, dev = the vdev's name, removable = 0, bootable = 1; frontend\n"
                "nodes: virtual-device = DEVID, device-type = disk.  A vbd backend (pvabi's\n"
                "blkback) serves it; a Linux domU's blkfront shows it as /dev/xvdX.\n"
                "  --vdev xvdX|DEVID  the virtual device: xvda..xvdp are 51712 + 16 * index\n"
                "                     (xl's numbering), xvdq..xvdz 1<<28 | index<<8;\n"
                "                     default: the first xvd the frontend does not have\n"
                "  --ro               read-only (mode r)\n"
                "  --backend DOMID    the backend's domain (default: this one)\n"
                "IMAGE must exist when the backend is this domain.  Prints \"VDEV DEVID\".\n"
                "--json: {\"vdev\", \"devid\", \"frontend\": PATH, \"backend\": PATH}.\n",
        .run = cli_block_attach,
    },
    {
        .name = "block-detach",
        .path = "block-detach",
        .args = "FRONTEND VDEV [--backend DOMID] [--timeout SECONDS] [--force]",
        .summary = "Take a disk away from a domain, as `xl block-detach`.",
        .help = "Asks the backend to close (online = 0 in its directory: it runs the close\n"
                "handshake with the frontend), waits until either end is Closed or gone,\n"
                "then removes both directories.  A frontend that is not connected (its\n"
                "domain gone, say) is removed at once.  VDEV: xvdX or a device id.\n"
                "  --backend DOMID    the backend's domain (default: the frontend's\n"
                "                     backend-id node, else this domain)\n"
                "  --timeout SECONDS  how long to wait for the close (default 10; then\n"
                "                     exit 1, nothing removed)\n"
                "  --force            remove at once, without asking the backend\n"
                "--json: {\"removed\": [FRONTEND-PATH, BACKEND-PATH]}.\n",
        .run = cli_block_detach,
    },
    {
        .name = "help",
        .path = "help",
        .args = "[COMMAND [SUBCOMMAND]]",
        .summary = "Show the help of pvabi or of a command.",
        .help = "",
    },
    { 0 },
};

static const struct cli_cmd *find(const struct cli_cmd *table, const char *name)
{
    for (; table->name; table++)
        if (strcmp(table->name, name) == 0)
            return table;
    return NULL;
}

static void main_help(FILE *f)
{
    fputs("usage: pvabi [--platform SPEC] [--json] COMMAND [ARGS...]\n\n"
          "Inspect and manage a Xen host or pvabi's embedded hypervisor.\n\nCommands:\n",
          f);
    for (const struct cli_cmd *c = commands; c->name; c++)
        fprintf(f, "  %-12s %s\n", c->name, c->summary);
    fputs("\nOptions:\n"
          "  --platform SPEC  xen, local or local:SOCKET, as pvabi_open(); default:\n"
          "                   $PVABI_PLATFORM, else xen when /dev/xen/privcmd opens, else local\n"
          "  --json           print one JSON document on stdout\n"
          "  --help           this help; `pvabi help COMMAND` or `pvabi COMMAND --help`\n"
          "  --version        print pvabi's version\n"
          "\nExit status: 0 done; 1 the operation failed (a message on stderr);\n"
          "2 usage error.  PVABI_LOG=warn|debug shows the library's log as it happens.\n",
          f);
}

/* `pvabi help [COMMAND [SUBCOMMAND]]`. */
static int run_help(int argc, char **argv)
{
    const struct cli_cmd *help_cmd = find(commands, "help"), *cmd;

    if (argc < 2 || strcmp(argv[1], "--help") == 0) {
        main_help(stdout);
        return CLI_OK;
    }
    cmd = find(commands, argv[1]);
    if (cmd && argc > 2) {
        cmd = cmd->sub ? find(cmd->sub, argv[2]) : NULL;
        if (!cmd || argc > 3)
            cli_usage(help_cmd, "no such command: %s %s", argv[1], argv[2]);
    }
    if (!cmd)
        cli_usage(help_cmd, "no such command: %s", argv[1]);
    cli_help(cmd, stdout);
    return CLI_OK;
}

/* A group (store, hv): its --help, or the subcommand named next. */
static int run_group(struct cli *cli, const struct cli_cmd *group, int argc, char **argv)
{
    const struct cli_cmd *sub;

    if (argc < 2)
        cli_usage(group, "a subcommand is missing");
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        cli_help(group, stdout);
        return CLI_OK;
    }
    sub = find(group->sub, argv[1]);
    if (!sub)
        cli_usage(group, "no such command: %s", argv[1]);
    return sub->run(cli, sub, argc - 1, argv + 1);
}

/* Global options, before the command.  Returns the command's index. */
static int parse_global(struct cli *cli, int argc, char **argv)
{
    static const struct option opts[] = {
        { "platform", required_argument, NULL, 'P' },
        { "json", no_argument, NULL, 'J' },
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { NULL, 0, NULL, 0 },
    };
    int c;

    opterr = 0;
    while ((c = getopt_long(argc, argv, "+:h", opts, NULL)) != -1) {
        if (c == 'P')
            cli->platform = optarg;
        else if (c == 'J')
            cli->json = true;
        else if (c == 'h')
            main_help(stdout), exit(CLI_OK);
        else if (c == 'V')
            printf("pvabi %s\n", pvabi_version()), exit(CLI_OK);
        else if (c == ':')
            cli_usage(NULL, "option '%s' needs a value", argv[optind - 1]);
        else
            cli_usage(NULL, "unknown option '%s'", argv[optind - 1]);
    }
    if (optind >= argc)
        cli_usage(NULL, "no command given");
    return optind;
}

static int dispatch(struct cli *cli, int argc, char **argv)
{
    const struct cli_cmd *cmd = find(commands, argv[0]);

    if (!cmd)
        cli_usage(NULL, "no such command: %s", argv[0]);
    if (strcmp(cmd->name, "help") == 0)
        return run_help(argc, argv);
    if (cmd->sub)
        return run_group(cli, cmd, argc, argv);
    return cmd->run(cli, cmd, argc, argv);
}

int main(int argc, char **argv)
{
    struct cli cli = { 0 };
    int first, rc;

    cli_log_setup();
    first = parse_global(&cli, argc, argv);
    rc = dispatch(&cli, argc - first, argv + first);
    cli_close(&cli);
    cli_log_forget();
    /* Output that could not be written is a failure too (a full disk). */
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fputs("pvabi: writing the output failed\n", stderr);
        return CLI_FAIL;
    }
    return rc;
}
