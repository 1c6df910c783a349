/* SPDX-License-Identifier: MIT */
/*
 * `pvabi info`: the host and the hypervisor, with `xl info`'s keys and
 * layout ("%-23s: value") wherever the meaning is the same, so that the two
 * can be compared line by line on Xen.
 */
#include <inttypes.h>
#include <string.h>
#include <sys/utsname.h>

#include "cli.h"

static void kv_str(struct cli *cli, const char *key, const char *value)
{
    if (cli->json)
        json_kstr(&cli->out, key, value);
    else
        printf("%-23s: %s\n", key, value);
}

static void kv_u64(struct cli *cli, const char *key, uint64_t value)
{
    if (cli->json)
        json_ku64(&cli->out, key, value);
    else
        printf("%-23s: %" PRIu64 "\n", key, value);
}

static void node_info(struct cli *cli)
{
    struct utsname u;

    if (uname(&u) != 0)
        return;
    kv_str(cli, "host", u.nodename);
    kv_str(cli, "release", u.release);
    kv_str(cli, "version", u.version);
    kv_str(cli, "machine", u.machine);
}

/* xl's virt_caps words, in xl's order. */
static void virt_caps(struct cli *cli, uint32_t caps)
{
    static const struct {
        uint32_t need, also;
        const char *word;
    } words[] = {
        { PVABI_PHYSCAP_PV, 0, "pv" },
        { PVABI_PHYSCAP_HVM, 0, "hvm" },
        { PVABI_PHYSCAP_HVM, PVABI_PHYSCAP_DIRECTIO, "hvm_directio" },
        { PVABI_PHYSCAP_PV, PVABI_PHYSCAP_DIRECTIO, "pv_directio" },
        { PVABI_PHYSCAP_HAP, 0, "hap" },
        { PVABI_PHYSCAP_SHADOW, 0, "shadow" },
        { PVABI_PHYSCAP_GNTTAB_V1, 0, "gnttab-v1" },
        { PVABI_PHYSCAP_GNTTAB_V2, 0, "gnttab-v2" },
    };

    if (cli->json) {
        json_key(&cli->out, "virt_caps");
        json_arr(&cli->out);
    } else {
        printf("%-23s:", "virt_caps");
    }
    for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
        uint32_t need = words[i].need | words[i].also;
        if ((caps & need) != need)
            continue;
        if (cli->json)
            json_str(&cli->out, words[i].word);
        else
            printf(" %s", words[i].word);
    }
    if (cli->json)
        json_end(&cli->out);
    else
        putchar('\n');
}

static void cpu_info(struct cli *cli, const struct pvabi_physinfo *p)
{
    char buf[96];

    kv_u64(cli, "nr_cpus", p->nr_cpus);
    kv_u64(cli, "max_cpu_id", p->max_cpu_id);
    kv_u64(cli, "nr_nodes", p->nr_nodes);
    kv_u64(cli, "cores_per_socket", p->cores_per_socket);
    kv_u64(cli, "threads_per_core", p->threads_per_core);
    if (cli->json) {
        json_key(&cli->out, "cpu_mhz");
        json_double(&cli->out, p->cpu_khz / 1000.0);
    } else {
        printf("%-23s: %u.%03u\n", "cpu_mhz", p->cpu_khz / 1000, p->cpu_khz % 1000);
    }
    snprintf(buf, sizeof(buf), "%08x:%08x:%08x:%08x:%08x:%08x:%08x:%08x", p->hw_cap[0],
             p->hw_cap[1], p->hw_cap[2], p->hw_cap[3], p->hw_cap[4], p->hw_cap[5], p->hw_cap[6],
             p->hw_cap[7]);
    kv_str(cli, "hw_caps", buf);
}

static int phys_info(struct cli *cli)
{
    struct pvabi_physinfo p;
    uint64_t per_mib;
    int rc = pvabi_physinfo_read(cli->ctx, &p);

    if (rc < 0)
        return rc;
    cpu_info(cli, &p);
    virt_caps(cli, p.capabilities);
    /* MiB as xl counts them: whole pages per MiB; claims are not free. */
    per_mib = (1u << 20) / (p.page_size ? p.page_size : PVABI_PAGE_SIZE);
    per_mib = per_mib ? per_mib : 1;
    kv_u64(cli, "total_memory", p.total_pages / per_mib);
    kv_u64(cli, "free_memory",
           (p.free_pages > p.outstanding_pages ? p.free_pages - p.outstanding_pages : 0) / per_mib);
    return 0;
}

static int xen_info(struct cli *cli)
{
    struct pvabi_xen_version v;
    char buf[64];
    int rc = pvabi_xen_version_read(cli->ctx, &v);

    if (rc < 0)
        return rc;
    kv_u64(cli, "xen_major", v.major);
    kv_u64(cli, "xen_minor", v.minor);
    kv_str(cli, "xen_extra", v.extra);
    snprintf(buf, sizeof(buf), "%u.%u%s", v.major, v.minor, v.extra);
    kv_str(cli, "xen_version", buf);
    kv_str(cli, "xen_caps", v.capabilities);
    kv_u64(cli, "xen_pagesize", v.pagesize);
    kv_str(cli, "xen_changeset", v.changeset);
    return 0;
}

int cli_info(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv)
{
    int first = cli_parse(cli, cmd, argc, argv, NULL, NULL, NULL, false);
    int phys, xen;

    if (first < argc)
        cli_usage(cmd, "unexpected argument '%s'", argv[first]);
    if (cli_open(cli) != 0)
        return CLI_FAIL;
    cli_json_begin(cli);
    if (cli->json)
        json_obj(&cli->out);
    node_info(cli);
    phys = phys_info(cli);
    xen = xen_info(cli);
    kv_str(cli, "platform", pvabi_platform(cli->ctx));
    if (cli->json)
        json_finish(&cli->out);
    /* Everything readable is out; now say what was not. */
    if (phys < 0)
        cli_fail(phys, "info: reading the host's physinfo (sysctl)");
    if (xen < 0)
        cli_fail(xen, "info: reading the hypervisor's version");
    return phys < 0 || xen < 0 ? CLI_FAIL : CLI_OK;
}
