/* SPDX-License-Identifier: MIT */
/*
 * blkfront-cli.h - the CLI's shared state: blkfront-cli.c parses the
 * arguments and connects, cli-transfer.c moves the data.
 */
#ifndef PVABI_EXAMPLES_BLKFRONT_CLI_H
#define PVABI_EXAMPLES_BLKFRONT_CLI_H

#include <stddef.h>
#include <stdint.h>

#include "blkfront.h"

enum { CMD_INFO, CMD_READ, CMD_WRITE, CMD_FILL, CMD_VERIFY, CMD_FLUSH, CMD_DISCARD };

struct cli {
    const char *platform;
    unsigned devid;
    struct blkfront_opts opts;
    unsigned depth;
    size_t chunk;
    int quiet;
    int cmd;
    uint64_t offset, len, seed;
    int has_len; /* write: LEN given (else until EOF) */
    struct blkfront *bf;
    uint64_t bytes; /* moved so far */
};

/* "4096", "64K", "1M", "2G", "0x1000": 0 or -EINVAL / -ERANGE. */
int cli_parse_size(const char *s, uint64_t *out);
/* read / write / fill / verify: 0, -EILSEQ (verify mismatch, reported), -errno. */
int cli_transfer(struct cli *c);

#endif /* PVABI_EXAMPLES_BLKFRONT_CLI_H */
