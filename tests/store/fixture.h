/* SPDX-License-Identifier: MIT */
/*
 * The shared fixture of the embedded-xenstore tests (tests/store): a private
 * pvabi-hv per test, spoken to as Xen's clients speak to xenstored.
 *
 * - fx_setup()/fx_teardown(): a daemon ($PVABI_HV) on <mkdtemp dir>/hv.sock,
 *   ready when it wrote its --ready-fd byte; XENSTORED_PATH is set to its
 *   store socket (<dir>/hv.sock.xenstore) so xs_open(0) and xenstore-utils
 *   reach it.  Teardown kills the test's agents, stops the daemon with
 *   SIGTERM, checks that it exits 0 and removes the directory.
 * - The test process holds no pvabi context, so its store connections are
 *   "toolstack" connections: they speak as the privileged domain (Xen's
 *   dom0 socket).
 * - Domains are agents: this test program executed again (argv[1] ==
 *   FX_AGENT_ARG) with its own pvabi context(s) and its own libxenstore
 *   connection, doing store operations on request over a socketpair.  Each
 *   is a domain of its own pid, so the daemon knows who speaks.
 * - Nothing sleeps: every wait is a poll() on the protocol's own events
 *   whose timeout (FX_WAIT_MS) only guards against a hang.
 */
#ifndef PVABI_TESTS_STORE_FIXTURE_H
#define PVABI_TESTS_STORE_FIXTURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <xenstore.h>
#include <xen/io/xs_wire.h>

/* A guard against hangs only; nothing waits for it to pass. */
#define FX_WAIT_MS   10000
#define FX_AGENT_ARG "--fx-store-agent"
#define FX_MAX_DOMS  16

struct fx {
    pid_t pid; /* the daemon */
    char dir[64];
    char hv_sock[128];
    char xs_sock[160]; /* XENSTORED_PATH */
    char spec[160];    /* "local:<hv_sock>", for pvabi_open() */
    pid_t doms[FX_MAX_DOMS];
    unsigned ndoms;
};

/* The fixture of the current test (fx_setup() sets it). */
extern struct fx *fx_cur;

/* In main(): 77 with a reason when $PVABI_HV is missing, else 0. */
int fx_require_hv(void);
/* In main(), first: runs the agent and returns its exit status when this
 * process is one (argv[1] == FX_AGENT_ARG), else returns -1. */
int fx_agent_main(int argc, char **argv);

/* A daemon with extra options (NULL-terminated list, or NULL). */
void fx_start(struct fx *fx, const char *const *extra);
/* Kills the agents, stops the daemon (asserting a clean exit 0). */
void fx_stop(struct fx *fx);
/* CMocka setup/teardown: fx_setup starts a daemon with the extra options
 * fx_default_args points at (NULL: none) and makes it fx_cur. */
extern const char *const *fx_default_args;
int fx_setup(void **state);
int fx_teardown(void **state);

/* ---- libxenstore, as the toolstack -------------------------------------- */

/* xs_open(0) on the current daemon (asserts success). */
struct xs_handle *fx_xs_open(void);
void fx_write(struct xs_handle *h, const char *path, const char *value);
/* The value (malloc'd, NUL-terminated) or NULL with errno. */
char *fx_read(struct xs_handle *h, xs_transaction_t t, const char *path);
/* Asserts @path reads as @value. */
void fx_expect_value(struct xs_handle *h, const char *path, const char *value);
/* Asserts @path does not exist (read fails with ENOENT). */
void fx_expect_enoent(struct xs_handle *h, const char *path);

/* Permissions as text, Xen's letters: "n0 r5 b7" (owner/others first). */
int fx_perms_format(const struct xs_permissions *p, unsigned n, char *buf, size_t cap);
int fx_perms_parse(const char *s, struct xs_permissions *p, unsigned max);
/* Reads @path's permissions as text into @buf; 0 or errno. */
int fx_perms_get(struct xs_handle *h, const char *path, char *buf, size_t cap);
/* Sets @path's permissions from text; 0 or errno. */
int fx_perms_set(struct xs_handle *h, const char *path, const char *perms);

/* The next watch event within @timeout_ms: 0 and the malloc'd path/token
 * (free both), or ETIMEDOUT, or another errno (the connection died). */
int fx_next_event(struct xs_handle *h, int timeout_ms, char **path, char **token);
/* Asserts that the next event is (@path, @token). */
void fx_expect_event(struct xs_handle *h, const char *path, const char *token);
/* Asserts that no event is pending: a fresh watch is set and its initial
 * event must be the next one (everything the daemon queued for @h before
 * would come first), then the watch is removed. */
void fx_expect_quiet(struct xs_handle *h);

struct fx_event {
    char path[512];
    char token[128];
};
/* Collects the events pending for @h (up to @max) using the same barrier as
 * fx_expect_quiet(); returns how many. */
int fx_collect(struct xs_handle *h, struct fx_event *ev, int max);
/* True if @ev[0..n) has (@path, @token). */
bool fx_has_event(const struct fx_event *ev, int n, const char *path, const char *token);

/* ---- raw wire ------------------------------------------------------------- */

/* A raw connection to the store socket (asserted). */
int fx_raw_connect(void);
/* Sends one message; 0 or -errno. */
int fx_raw_send(int s, uint32_t type, uint32_t req_id, uint32_t tx_id, const void *payload,
                uint32_t len);
/* Receives one message into @hdr and @buf (at most @cap bytes of payload,
 * NUL-terminated when room): 0, -ETIMEDOUT, -EPIPE (EOF), -EMSGSIZE (payload
 * larger than @cap), or -errno. */
int fx_raw_recv(int s, struct xsd_sockmsg *hdr, char *buf, size_t cap, int timeout_ms);
/* Sends a request and returns its reply (watch events before it are
 * dropped); same returns as fx_raw_recv. */
int fx_raw_call(int s, uint32_t type, uint32_t req_id, uint32_t tx_id, const void *payload,
                uint32_t len, struct xsd_sockmsg *hdr, char *buf, size_t cap);
/* Waits until the daemon closed @s (reading and dropping what it sent);
 * true if it did within @timeout_ms. */
bool fx_raw_wait_closed(int s, int timeout_ms);
/* Xen's error string for @err ("EINVAL"). */
const char *fx_errname(int err);

/* ---- domains (agents) ----------------------------------------------------- */

struct fx_dom {
    pid_t pid;
    int fd;
    unsigned domid;
    unsigned domid2; /* the second context's domid, with two */
    char home[64];   /* "/local/domain/<domid>" */
};

enum fx_op {
    FX_OP_READ = 1,
    FX_OP_WRITE,
    FX_OP_MKDIR,
    FX_OP_RM,
    FX_OP_DIR,
    FX_OP_GETPERMS,
    FX_OP_SETPERMS,
    FX_OP_WATCH,
    FX_OP_UNWATCH,
    FX_OP_NEXT_EVENT,
    FX_OP_QUIET,
    FX_OP_TX_START,
    FX_OP_TX_END,
    FX_OP_CONTROL,
    FX_OP_DOMAIN_PATH,
    FX_OP_INTRODUCED,
    FX_OP_PVABI_CLOSE, /* pvabi_close() of context a0 ("0" or "1"): that domain dies */
};

/* Starts an agent on the current daemon with @ncontexts pvabi contexts (1
 * or 2), asking for @want_domid (-1: any); asserts it came up. */
void fx_dom_spawn(struct fx_dom *d, int want_domid, int ncontexts);
/* Like fx_dom_spawn, but returns the agent's error (a positive errno from
 * pvabi_open or xs_open) instead of asserting. */
int fx_dom_try_spawn(struct fx_dom *d, int want_domid, int ncontexts);
/* SIGKILL and reap. */
void fx_dom_kill(struct fx_dom *d);

/* One operation in the agent: 0 or the errno libxenstore reported.
 * @a0 a string (or NULL), @a1/@l1 bytes; the reply data goes to @out
 * (NUL-terminated, @cap bytes at most) and its length to @outlen. */
int fx_dom_op(struct fx_dom *d, enum fx_op op, uint32_t tx, const char *a0, const void *a1,
              size_t l1, char *out, size_t cap, size_t *outlen);
int fx_dom_read(struct fx_dom *d, const char *path, char *out, size_t cap);
int fx_dom_write(struct fx_dom *d, const char *path, const char *value);
int fx_dom_mkdir(struct fx_dom *d, const char *path);
int fx_dom_rm(struct fx_dom *d, const char *path);
/* Children joined with ' '. */
int fx_dom_dir(struct fx_dom *d, const char *path, char *out, size_t cap);
int fx_dom_getperms(struct fx_dom *d, const char *path, char *out, size_t cap);
int fx_dom_setperms(struct fx_dom *d, const char *path, const char *perms);
int fx_dom_watch(struct fx_dom *d, const char *path, const char *token);
int fx_dom_unwatch(struct fx_dom *d, const char *path, const char *token);
/* 0 and "path token" in @out, or ETIMEDOUT. */
int fx_dom_next_event(struct fx_dom *d, int timeout_ms, char *out, size_t cap);
/* 0 if no event was pending (see fx_expect_quiet), else EPROTO with the
 * first unexpected event "path token" in @out. */
int fx_dom_quiet(struct fx_dom *d, char *out, size_t cap);
int fx_dom_tx_start(struct fx_dom *d, uint32_t *tx);
int fx_dom_tx_end(struct fx_dom *d, uint32_t tx, bool abort);
/* xs_control_command(h, @cmd, @arg incl. its NUL); the reply to @out. */
int fx_dom_control(struct fx_dom *d, const char *cmd, const char *arg, char *out, size_t cap);

/* Counts the nodes of the whole tree owned by @domid (walked by @h). */
unsigned fx_count_owned(struct xs_handle *h, unsigned domid);

#endif /* PVABI_TESTS_STORE_FIXTURE_H */
