/* SPDX-License-Identifier: MIT */
/*
 * cli_helper - a domain for the CLI tests to look at: it opens a context
 * (a new domain of the local platform), prints "domid N", then obeys one
 * command per line on stdin, answering each with one line, until EOF:
 *
 *   share DOMID COUNT [ro]   -> "refs R1 R2 ..."  (pvabi_grant_share)
 *   alloc DOMID              -> "port P"          (an unbound port for DOMID)
 *   bind DOMID PORT          -> "port P"          (to DOMID's unbound PORT)
 *   map DOMID REF [ro]       -> "mapped"          (DOMID's grant REF)
 *   anything that fails      -> "error <what>: <strerror>"
 *
 * The test drives it through a pipe, so it waits on its stdin, never sleeps.
 * usage: cli_helper SPEC
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pvabi/pvabi.h>

#define MAX_SHARES 16

struct helper {
    pvabi_ctx *ctx;
    pvabi_grant *shares[MAX_SHARES];
    pvabi_map *maps[MAX_SHARES];
    unsigned nshares, nmaps;
};

static int error(const char *what, int rc)
{
    printf("error %s: %s\n", what, strerror(-rc));
    return 0;
}

static int cmd_share(struct helper *h, unsigned dom, unsigned count, const char *ro)
{
    pvabi_grant *g;
    int rc;

    if (h->nshares == MAX_SHARES)
        return error("share", -ENOSPC);
    rc = pvabi_grant_share(h->ctx, (pvabi_domid)dom, count,
                           ro && strcmp(ro, "ro") == 0 ? PVABI_GRANT_RO : 0, &g);
    if (rc < 0)
        return error("share", rc);
    h->shares[h->nshares++] = g;
    fputs("refs", stdout);
    for (unsigned i = 0; i < count; i++)
        printf(" %u", pvabi_grant_ref(g, i));
    putchar('\n');
    return 0;
}

static int cmd_map(struct helper *h, unsigned dom, unsigned ref, const char *ro)
{
    pvabi_gref r = ref;
    pvabi_map *m;
    int rc;

    if (h->nmaps == MAX_SHARES)
        return error("map", -ENOSPC);
    rc = pvabi_grant_map(h->ctx, (pvabi_domid)dom, &r, 1,
                         ro && strcmp(ro, "ro") == 0 ? PVABI_GRANT_RO : 0, NULL, &m);
    if (rc < 0)
        return error("map", rc);
    h->maps[h->nmaps++] = m;
    puts("mapped");
    return 0;
}

static void cmd_port(struct helper *h, bool bind, unsigned dom, unsigned remote_port)
{
    pvabi_port port = 0;
    int rc = bind ? pvabi_evtchn_bind(h->ctx, (pvabi_domid)dom, remote_port, &port)
                  : pvabi_evtchn_alloc(h->ctx, (pvabi_domid)dom, &port);

    if (rc < 0)
        error(bind ? "bind" : "alloc", rc);
    else
        printf("port %u\n", port);
}

static void run(struct helper *h, const char *line)
{
    char verb[16], extra[8] = "";
    unsigned a = 0, b = 0;
    int n = sscanf(line, "%15s %u %u %7s", verb, &a, &b, extra);

    if (n >= 3 && strcmp(verb, "share") == 0)
        cmd_share(h, a, b, extra);
    else if (n >= 3 && strcmp(verb, "map") == 0)
        cmd_map(h, a, b, extra);
    else if (n == 2 && strcmp(verb, "alloc") == 0)
        cmd_port(h, false, a, 0);
    else if (n == 3 && strcmp(verb, "bind") == 0)
        cmd_port(h, true, a, b);
    else
        error("command", -EINVAL);
    fflush(stdout);
}

int main(int argc, char **argv)
{
    struct helper h = { 0 };
    char line[256];
    int rc;

    if (argc != 2) {
        fputs("usage: cli_helper SPEC\n", stderr);
        return 2;
    }
    rc = pvabi_open(&h.ctx, argv[1]);
    if (rc < 0) {
        fprintf(stderr, "cli_helper: pvabi_open %s: %s\n", argv[1], strerror(-rc));
        return 1;
    }
    printf("domid %u\n", pvabi_own_domid(h.ctx));
    fflush(stdout);
    while (fgets(line, sizeof(line), stdin))
        run(&h, line);
    /* Unmap before closing, so that the sharer's view stays tidy. */
    for (unsigned i = 0; i < h.nmaps; i++)
        pvabi_grant_unmap(h.maps[i]);
    pvabi_close(h.ctx);
    return 0;
}
