/* SPDX-License-Identifier: MIT */
/*
 * The XenbusState machine (src/xenbus/state.c) without any I/O:
 * - tables of transitions, one row per (role, state, flags, event), with
 *   the actions and the state that must follow;
 * - every combination of state, flags and event, checked against the rules
 *   the shell relies on and the legal transitions drawn in pvabi/xenbus.h;
 * - whole handshakes between a frontend and a backend machine joined by a
 *   model of the store (reconnects included).
 * Linked against the library's internals (the machine is not exported).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include <pvabi/xenbus.h>

#include "xenbus/state.h"

/* ---- rendering an output as text ---------------------------------------- */

static const char *short_state(int s)
{
    static const char *const n[] = { "UNK", "INI", "IW", "ID", "CON", "CLG", "CLD", "RCG", "RCD" };
    return s >= 0 && s <= 8 ? n[s] : "?";
}

static const char *event_name(int e)
{
    static const char *const n[] = {
        "?", "ready", "connected", "lost", "closing", "closed", "error"
    };
    return e >= 1 && e <= 6 ? n[e] : "?";
}

/* "pub sw:ID att-re det rep:lost !ignored" */
static void render(const struct xb_out *out, char *buf, size_t size)
{
    size_t used = 0;

    buf[0] = '\0';
    for (unsigned i = 0; i < out->n; i++) {
        const struct xb_action *a = &out->act[i];
        const char *sp = used ? " " : "";
        switch (a->type) {
        case XB_ACT_PUBLISH:
            used += (size_t)snprintf(buf + used, size - used, "%spub", sp);
            break;
        case XB_ACT_ATTACH:
            used += (size_t)snprintf(buf + used, size - used, "%satt%s", sp, a->arg ? "-re" : "");
            break;
        case XB_ACT_DETACH:
            used += (size_t)snprintf(buf + used, size - used, "%sdet", sp);
            break;
        case XB_ACT_SWITCH:
            used += (size_t)snprintf(buf + used, size - used, "%ssw:%s", sp, short_state(a->arg));
            break;
        case XB_ACT_REPORT:
            used += (size_t)snprintf(buf + used, size - used, "%srep:%s", sp, event_name(a->arg));
            break;
        default:
            used += (size_t)snprintf(buf + used, size - used, "%s?%d", sp, a->type);
            break;
        }
    }
    if (out->ignored)
        snprintf(buf + used, size - used, "%s!ignored", used ? " " : "");
}

/* ---- tables -------------------------------------------------------------- */

/* Flags of struct xb_sm, packed for the tables. */
#define A 1u /* attached */
#define U 2u /* unplug */
#define L 4u /* lost */
#define C 8u /* closed */

static struct xb_sm machine(int role, int own, int peer, unsigned flags)
{
    struct xb_sm sm;

    pvabi__xb_init(&sm, role);
    sm.own = (uint8_t)own;
    sm.peer = (uint8_t)peer;
    sm.attached = !!(flags & A);
    sm.unplug = !!(flags & U);
    sm.lost = !!(flags & L);
    sm.closed = !!(flags & C);
    return sm;
}

static unsigned flags_of(const struct xb_sm *sm)
{
    return (sm->attached ? A : 0) | (sm->unplug ? U : 0) | (sm->lost ? L : 0) |
           (sm->closed ? C : 0);
}

struct row {
    int line;
    uint8_t own, peer;
    unsigned flags;
    uint8_t ev;
    uint8_t arg;  /* PEER_STATE: the new peer state; START: the peer state read */
    uint8_t arg2; /* START: our state read */
    int err;      /* ATTACHED, FAILED */
    int rc;       /* what an own request returns */
    const char *acts;
    uint8_t own_after;
    unsigned flags_after;
};

enum { UNK = XB_UNK, INI, IW, ID, CON, CLG, CLD, RCG, RCD };

#define START(own0, peer0) XB_EV_START, peer0, own0, 0
#define PEER(s)            XB_EV_PEER_STATE, s, 0, 0
#define GONE               XB_EV_PEER_GONE, 0, 0, 0
#define CONNECT            XB_EV_CONNECT, 0, 0, 0
#define CLOSE              XB_EV_CLOSE, 0, 0, 0
#define TIMEOUT            XB_EV_TIMEOUT, 0, 0, 0
#define ATTACHED(e)        XB_EV_ATTACHED, 0, 0, e
#define FAILED(e)          XB_EV_FAILED, 0, 0, e
#define ROW(own, peer, fl, ...)                                                                    \
    {                                                                                              \
        __LINE__, own, peer, fl, __VA_ARGS__                                                       \
    }

/* clang-format off */
static const struct row front_rows[] = {
    /* START: a reset of a previous life's state; PEER_READY if the backend waits */
    ROW(UNK, UNK, 0, START(INI, INI), 0, "", INI, 0),
    ROW(UNK, UNK, 0, START(INI, IW), 0, "rep:ready", INI, 0),
    ROW(UNK, UNK, 0, START(INI, ID), 0, "rep:ready", INI, 0),
    ROW(UNK, UNK, 0, START(CON, CON), 0, "sw:INI", INI, 0),
    ROW(UNK, UNK, 0, START(UNK, IW), 0, "sw:INI rep:ready", INI, 0),
    ROW(UNK, UNK, 0, START(CLD, CLD), 0, "sw:INI", INI, 0),
    ROW(UNK, UNK, 0, START(INI, CON), 0, "", INI, 0),
    /* CONNECT: publish with Initialised, when the backend is ready */
    ROW(INI, IW, 0, CONNECT, 0, "pub sw:ID", ID, A),
    ROW(INI, ID, 0, CONNECT, 0, "pub sw:ID", ID, A),
    ROW(INI, INI, 0, CONNECT, 0, "pub sw:ID", ID, A),
    ROW(INI, CON, 0, CONNECT, -EAGAIN, "", INI, 0),
    ROW(INI, CLD, 0, CONNECT, -EAGAIN, "", INI, 0),
    ROW(INI, UNK, 0, CONNECT, -EAGAIN, "", INI, 0),
    ROW(ID, IW, A, CONNECT, -EISCONN, "", ID, A),
    ROW(CON, CON, A, CONNECT, -EISCONN, "", CON, A),
    ROW(CLG, CON, A | U, CONNECT, -ESHUTDOWN, "", CLG, A | U),
    ROW(CLD, CLD, U, CONNECT, -ESHUTDOWN, "", CLD, U),
    /* the backend advertises */
    ROW(INI, INI, 0, PEER(IW), 0, "rep:ready", INI, 0),
    ROW(INI, IW, 0, PEER(IW), 0, "", INI, 0),
    ROW(INI, INI, 0, PEER(ID), 0, "rep:ready", INI, 0),
    ROW(ID, IW, A, PEER(ID), 0, "", ID, A),
    /* the backend connects */
    ROW(ID, IW, A, PEER(CON), 0, "sw:CON rep:connected", CON, A),
    ROW(CON, CON, A, PEER(CON), 0, "", CON, A),
    ROW(INI, CLD, 0, PEER(CON), 0, "", INI, 0),
    /* a backend that died and re-attached rewrites Connected */
    ROW(CON, CON, A | L, PEER(CON), 0, "rep:connected", CON, A),
    ROW(ID, IW, A | L, PEER(CON), 0, "sw:CON rep:connected", CON, A),
    /* a backend that started from scratch under a connected frontend */
    ROW(CON, CON, A, PEER(IW), 0, "sw:INI rep:lost rep:ready", INI, 0),
    ROW(CON, CON, A | L, PEER(IW), 0, "sw:INI rep:ready", INI, 0),
    ROW(CON, CON, A, PEER(ID), 0, "!ignored", CON, A),
    /* close handshake, the backend starts it */
    ROW(ID, IW, A, PEER(CLG), 0, "sw:CLG rep:closing", CLG, A),
    ROW(CON, CON, A, PEER(CLG), 0, "sw:CLG rep:closing", CLG, A),
    ROW(CLG, CLG, A, PEER(CLD), 0, "sw:CLD rep:closed", CLD, 0),
    /* close handshake, we start it */
    ROW(CON, CON, A, CLOSE, 0, "sw:CLG", CLG, A | U),
    ROW(ID, IW, A, CLOSE, 0, "sw:CLG", CLG, A | U),
    ROW(CLG, CON, A | U, PEER(CLG), 0, "sw:CLD", CLD, A | U),
    ROW(CLD, CLG, A | U, PEER(CLD), 0, "rep:closed", CLD, U),
    ROW(CLG, CON, A | U, PEER(CLD), 0, "sw:CLD rep:closed", CLD, U),
    ROW(CLG, CON, A | U, CLOSE, 0, "", CLG, A | U),
    ROW(CLD, CLD, U, CLOSE, 0, "", CLD, U),
    /* close with nothing to hand over: at once */
    ROW(INI, IW, 0, CLOSE, 0, "sw:CLD rep:closed", CLD, U),
    ROW(CON, CON, A | L, CLOSE, 0, "sw:CLD rep:closed", CLD, U | L),
    ROW(CON, UNK, A | L, CLOSE, 0, "sw:CLD rep:closed", CLD, U | L),
    /* a backend that closes without Closing */
    ROW(CON, CON, A, PEER(CLD), 0, "sw:CLD rep:closed", CLD, 0),
    ROW(ID, IW, A, PEER(CLD), 0, "sw:CLD rep:closed", CLD, 0),
    /* stale states of a previous connection while we start over */
    ROW(INI, CON, 0, PEER(CLG), 0, "", INI, 0),
    ROW(INI, CLG, 0, PEER(CLD), 0, "", INI, 0),
    ROW(CLD, CLD, 0, PEER(CLG), 0, "", CLD, 0),
    /* the backend's node vanishes */
    ROW(CON, CON, A, PEER(UNK), 0, "rep:lost", CON, A | L),
    ROW(INI, IW, 0, PEER(UNK), 0, "rep:lost", INI, L),
    ROW(CLG, CON, A | U, PEER(UNK), 0, "sw:CLD rep:closed", CLD, U),
    ROW(CLD, CLG, A | U, PEER(UNK), 0, "rep:closed", CLD, U),
    ROW(CON, CON, A, PEER(INI), 0, "", CON, A),
    ROW(CON, CON, A, PEER(RCG), 0, "!ignored", CON, A),
    ROW(CON, CON, A, PEER(RCD), 0, "!ignored", CON, A),
    /* the backend's domain died */
    ROW(CON, CON, A, GONE, 0, "rep:lost", CON, A | L),
    ROW(CON, CON, A | L, GONE, 0, "", CON, A | L),
    ROW(ID, IW, A, GONE, 0, "rep:lost", ID, A | L),
    ROW(CLG, CON, A | U, GONE, 0, "sw:CLD rep:closed", CLD, U),
    ROW(CLD, CLG, A | U, GONE, 0, "rep:closed", CLD, U),
    ROW(CLD, CLD, U, GONE, 0, "", CLD, U),
    /* the close handshake timed out */
    ROW(CLG, CON, A | U, TIMEOUT, 0, "sw:CLD rep:closed", CLD, U),
    ROW(CLD, CLG, A | U, TIMEOUT, 0, "rep:closed", CLD, U),
    ROW(CON, CON, A, TIMEOUT, 0, "", CON, A),
    /* an action failed */
    ROW(ID, IW, A, FAILED(-EACCES), 0, "sw:CLG rep:error", CLG, A),
    ROW(CLG, CON, A, FAILED(-EIO), 0, "rep:error", CLG, A),
    ROW(INI, IW, 0, ATTACHED(0), -EINVAL, "", INI, 0),
};

static const struct row back_rows[] = {
    /* START: advertise and wait, or re-attach a ring in use */
    ROW(UNK, UNK, 0, START(INI, INI), 0, "pub sw:IW", IW, 0),
    ROW(UNK, UNK, 0, START(UNK, UNK), 0, "pub sw:IW", IW, 0),
    ROW(UNK, UNK, 0, START(CON, CON), 0, "att-re", CON, 0),
    ROW(UNK, UNK, 0, START(INI, ID), 0, "pub sw:IW att", IW, 0),
    ROW(UNK, UNK, 0, START(CLD, CON), 0, "pub sw:IW att-re", IW, 0),
    ROW(UNK, UNK, 0, START(CON, ID), 0, "pub sw:IW att", IW, 0),
    ROW(UNK, UNK, 0, START(IW, CLD), 0, "pub sw:IW", IW, 0),
    /* the attach finished */
    ROW(IW, ID, 0, ATTACHED(0), 0, "sw:CON rep:connected", CON, A),
    ROW(CON, CON, 0, ATTACHED(0), 0, "sw:CON rep:connected", CON, A),
    ROW(IW, ID, 0, ATTACHED(-EPROTO), 0, "sw:CLG rep:error", CLG, 0),
    ROW(CON, CON, 0, ATTACHED(-ESRCH), 0, "sw:CLG rep:error", CLG, 0),
    /* the frontend publishes */
    ROW(IW, INI, 0, PEER(ID), 0, "att", IW, 0),
    ROW(IW, INI, 0, PEER(CON), 0, "att-re", IW, 0),
    ROW(CON, ID, A, PEER(CON), 0, "", CON, A),
    ROW(CON, CON, A, PEER(ID), 0, "!ignored", CON, A),
    ROW(CLG, CON, A, PEER(ID), 0, "!ignored", CLG, A),
    /* a frontend that came back before we saw it go */
    ROW(CLD, UNK, 0, PEER(ID), 0, "pub sw:IW att", IW, 0),
    ROW(CLD, UNK, 0, PEER(CON), 0, "pub sw:IW att-re", IW, 0),
    ROW(CLD, CLD, U | C, PEER(ID), 0, "", CLD, U | C),
    /* the frontend is (again) Initialising */
    ROW(CLD, UNK, 0, PEER(INI), 0, "pub sw:IW", IW, 0),
    ROW(CLD, CLD, C, PEER(INI), 0, "pub sw:IW", IW, 0),
    ROW(CON, ID, A, PEER(INI), 0, "det pub sw:IW rep:lost", IW, 0),
    ROW(CLG, CLG, A, PEER(INI), 0, "det pub sw:IW rep:lost", IW, 0),
    ROW(IW, CLD, 0, PEER(INI), 0, "", IW, 0),
    ROW(CLG, CON, A | U, PEER(INI), 0, "det sw:CLD rep:closed", CLD, U | C),
    ROW(CLD, CLD, U | C, PEER(INI), 0, "", CLD, U | C),
    /* close handshake, the frontend starts it */
    ROW(CON, CON, A, PEER(CLG), 0, "sw:CLG rep:closing", CLG, A),
    ROW(IW, INI, 0, PEER(CLG), 0, "sw:CLG rep:closing", CLG, 0),
    ROW(CLG, CLG, A, PEER(CLD), 0, "det sw:CLD rep:closed", CLD, C),
    /* close handshake, we start it */
    ROW(CON, CON, A, CLOSE, 0, "sw:CLG", CLG, A | U),
    ROW(CLG, CON, A | U, PEER(CLG), 0, "det sw:CLD", CLD, U),
    ROW(CLD, CLG, U, PEER(CLD), 0, "rep:closed", CLD, U | C),
    ROW(CLD, CLG, U | C, PEER(UNK), 0, "", CLD, U | C),
    ROW(CLG, CON, A, CLOSE, 0, "", CLG, A | U),
    ROW(CLD, CLD, C, CLOSE, 0, "", CLD, U | C),
    /* close with no frontend attached: at once */
    ROW(IW, INI, 0, CLOSE, 0, "sw:CLD rep:closed", CLD, U | C),
    /* a frontend that closes without Closing */
    ROW(CON, CON, A, PEER(CLD), 0, "det sw:CLD rep:closed", CLD, C),
    ROW(IW, INI, 0, PEER(CLD), 0, "sw:CLD rep:closed", CLD, C),
    /* the frontend's node vanishes */
    ROW(CON, CON, A, PEER(UNK), 0, "det sw:CLD rep:lost", CLD, 0),
    ROW(IW, INI, 0, PEER(UNK), 0, "sw:CLD rep:lost", CLD, 0),
    ROW(IW, ID, 0, PEER(UNK), 0, "sw:CLD rep:lost", CLD, 0),
    ROW(CLG, CLG, U, PEER(UNK), 0, "sw:CLD rep:closed", CLD, U | C),
    ROW(CLD, CLD, 0, PEER(UNK), 0, "", CLD, 0),
    ROW(CON, CON, A, PEER(IW), 0, "!ignored", CON, A),
    ROW(CON, CON, A, PEER(RCG), 0, "!ignored", CON, A),
    /* the frontend's domain died */
    ROW(CON, CON, A, GONE, 0, "det sw:CLD rep:lost", CLD, 0),
    ROW(IW, INI, 0, GONE, 0, "sw:CLD rep:lost", CLD, 0),
    ROW(IW, UNK, 0, GONE, 0, "sw:CLD", CLD, 0),
    ROW(CLD, CLD, 0, GONE, 0, "", CLD, 0),
    /* the close handshake timed out */
    ROW(CLG, CON, A | U, TIMEOUT, 0, "det sw:CLD rep:closed", CLD, U | C),
    ROW(CON, CON, A, TIMEOUT, 0, "", CON, A),
    /* an action failed */
    ROW(IW, INI, 0, FAILED(-EIO), 0, "sw:CLG rep:error", CLG, 0),
    ROW(CON, CON, A, CONNECT, -EINVAL, "", CON, A),
};
/* clang-format on */

static void run_rows(int role, const struct row *rows, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const struct row *r = &rows[i];
        struct xb_sm sm = machine(role, r->own, r->peer, r->flags);
        struct xb_event ev = { .type = r->ev, .peer = r->arg, .own = r->arg2, .err = r->err };
        struct xb_out out;
        char got[256];

        pvabi__xb_step(&sm, &ev, &out);
        render(&out, got, sizeof(got));
        if (strcmp(got, r->acts) != 0 || out.rc != r->rc || sm.own != r->own_after ||
            flags_of(&sm) != r->flags_after)
            fail_msg("%s row at line %d: got \"%s\" rc %d -> %s flags %#x; want \"%s\" rc %d -> "
                     "%s flags %#x",
                     role == XB_FRONT ? "frontend" : "backend", r->line, got, out.rc,
                     short_state(sm.own), flags_of(&sm), r->acts, r->rc, short_state(r->own_after),
                     r->flags_after);
        if ((ev.type == XB_EV_FAILED || (ev.type == XB_EV_ATTACHED && ev.err)) && out.err != r->err)
            fail_msg("line %d: error reported as %d, want %d", r->line, out.err, r->err);
    }
}

static void test_xenbus_state_frontend_table(void **state)
{
    (void)state;
    run_rows(XB_FRONT, front_rows, sizeof(front_rows) / sizeof(front_rows[0]));
}

static void test_xenbus_state_backend_table(void **state)
{
    (void)state;
    run_rows(XB_BACK, back_rows, sizeof(back_rows) / sizeof(back_rows[0]));
}

/* ---- every combination, against the rules ---------------------------------- */

/* The transitions pvabi/xenbus.h draws, per role. */
static int legal(int role, int from, int to)
{
    if (role == XB_FRONT) {
        switch (to) {
        case INI: /* a reset: a (re)started frontend, or a backend that started over */
            return 1;
        case ID:
            return from == INI;
        case CON:
            return from == ID;
        case CLG: /* the handshake, or a failure */
            return from == INI || from == ID || from == CON;
        case CLD:
            return from == INI || from == ID || from == CON || from == CLG;
        default:
            return 0;
        }
    }
    switch (to) {
    case IW: /* advertise: at start, and whenever a frontend (re)appears */
        return 1;
    case CON:
        return from == IW || from == CON;
    case CLG:
        return from == IW || from == CON;
    case CLD:
        return from == IW || from == CON || from == CLG;
    default:
        return 0;
    }
}

/* The states a started handle can be in. */
static const uint8_t front_states[] = { INI, ID, CON, CLG, CLD };
static const uint8_t back_states[] = { IW, CON, CLG, CLD };

static void check_rules(int role, const struct xb_sm *before, const struct xb_event *ev,
                        const struct xb_out *out, const struct xb_sm *after)
{
    int own = ev->type == XB_EV_START ? ev->own : before->own, reports = 0;
    char got[256];

    render(out, got, sizeof(got));
#define RULE(cond, what)                                                                           \
    do {                                                                                           \
        if (!(cond))                                                                               \
            fail_msg("%s %s peer %s flags %#x event %d(%d): \"%s\": %s",                           \
                     role == XB_FRONT ? "frontend" : "backend", short_state(before->own),          \
                     short_state(before->peer), flags_of(before), ev->type, ev->peer, got, what);  \
    } while (0)
    RULE(out->n < XB_ACTIONS_MAX, "the action list is full (may have been cut)");
    RULE(out->rc == 0 || out->n == 0, "a refused request acted");
    RULE(out->rc == 0 || ev->type == XB_EV_CONNECT || ev->type == XB_EV_ATTACHED,
         "refused an event that is not a request");
    for (unsigned i = 0; i < out->n; i++) {
        const struct xb_action *a = &out->act[i];
        if (a->type == XB_ACT_REPORT) {
            reports++;
            continue;
        }
        RULE(reports == 0, "a REPORT before another action");
        if (a->type == XB_ACT_PUBLISH)
            RULE(i + 1 < out->n && out->act[i + 1].type == XB_ACT_SWITCH,
                 "PUBLISH without its SWITCH");
        if (a->type == XB_ACT_SWITCH) {
            if (ev->type != XB_EV_START)
                RULE(legal(role, own, a->arg), "an illegal transition");
            own = a->arg;
        }
        if (a->type == XB_ACT_ATTACH) {
            RULE(role == XB_BACK, "a frontend attaching");
            RULE(i + 1 == out->n, "ATTACH not last");
            RULE(!after->attached, "ATTACH while attached");
        }
        if (a->type == XB_ACT_DETACH)
            RULE(role == XB_BACK && before->attached, "DETACH with nothing attached");
    }
    RULE(after->own == own, "the machine's state is not its last SWITCH");
    RULE(!(role == XB_BACK && after->attached && after->own == CLD), "Closed but still attached");
#undef RULE
}

static void sweep(int role)
{
    const uint8_t *states = role == XB_FRONT ? front_states : back_states;
    size_t nstates = role == XB_FRONT ? sizeof(front_states) : sizeof(back_states);
    const uint8_t types[] = { XB_EV_PEER_STATE, XB_EV_PEER_GONE, XB_EV_CONNECT, XB_EV_CLOSE,
                              XB_EV_TIMEOUT,    XB_EV_ATTACHED,  XB_EV_FAILED };
    unsigned combos = 0;

    for (size_t s = 0; s < nstates; s++)
        for (int peer = 0; peer <= RCD; peer++)
            for (unsigned fl = 0; fl < 16; fl++)
                for (size_t t = 0; t < sizeof(types); t++)
                    for (int arg = 0; arg <= RCD; arg++) {
                        struct xb_sm sm = machine(role, states[s], peer, fl), before = sm;
                        struct xb_event ev = { .type = types[t],
                                               .peer = (uint8_t)arg,
                                               .err = arg ? -EIO : 0 };
                        struct xb_out out;
                        if (role == XB_BACK && (fl & L))
                            continue; /* only frontends lose their peer */
                        if (role == XB_BACK && states[s] == CLD && (fl & A))
                            continue; /* unreachable: the last rule of check_rules() */
                        if (types[t] != XB_EV_PEER_STATE && types[t] != XB_EV_ATTACHED && arg > 0)
                            continue;
                        if (types[t] == XB_EV_ATTACHED &&
                            (role == XB_FRONT || (fl & A) || (states[s] != IW && states[s] != CON)))
                            continue; /* only answers an ATTACH, asked for in IW or CON */
                        pvabi__xb_step(&sm, &ev, &out);
                        check_rules(role, &before, &ev, &out, &sm);
                        combos++;
                    }
    /* START from any state read from the store. */
    for (int own = 0; own <= RCD; own++)
        for (int peer = 0; peer <= RCD; peer++) {
            struct xb_sm sm = machine(role, UNK, UNK, 0), before = sm;
            struct xb_event ev = { .type = XB_EV_START,
                                   .own = (uint8_t)own,
                                   .peer = (uint8_t)peer };
            struct xb_out out;
            pvabi__xb_step(&sm, &ev, &out);
            check_rules(role, &before, &ev, &out, &sm);
            assert_true(role == XB_FRONT ? sm.own == INI : sm.own == IW || sm.own == CON);
            combos++;
        }
    print_message("%s: %u combinations checked\n", role == XB_FRONT ? "frontend" : "backend",
                  combos);
}

static void test_xenbus_state_frontend_every_event_follows_the_rules(void **state)
{
    (void)state;
    sweep(XB_FRONT);
}

static void test_xenbus_state_backend_every_event_follows_the_rules(void **state)
{
    (void)state;
    sweep(XB_BACK);
}

/* ---- two machines and a model of the store ------------------------------------ */

/* Each side's state node, and a queue of "the other side's node changed"
 * watch events; a side reads the node when it handles the event, as the
 * shell does (several changes may be seen as one). */
struct sim {
    struct xb_sm m[2];
    int node[2];   /* state nodes; XB_UNK: removed */
    int dead[2];   /* a dead side's machine sees nothing more */
    int queue[64]; /* whose node changed */
    unsigned head, len;
    int attach_rc; /* what the backend's next attaches return */
    char log[2][512];
};

static void sim_log(struct sim *s, int side, const char *what)
{
    size_t used = strlen(s->log[side]);
    snprintf(s->log[side] + used, sizeof(s->log[side]) - used, "%s%s", used ? " " : "", what);
}

static void sim_changed(struct sim *s, int side)
{
    assert_true(s->len < 64);
    s->queue[(s->head + s->len++) % 64] = side;
}

static void sim_feed(struct sim *s, int side, const struct xb_event *ev);

static void sim_apply(struct sim *s, int side, const struct xb_out *out)
{
    char buf[32];

    for (unsigned i = 0; i < out->n; i++) {
        const struct xb_action *a = &out->act[i];
        switch (a->type) {
        case XB_ACT_SWITCH:
            s->node[side] = a->arg;
            sim_changed(s, side);
            break;
        case XB_ACT_ATTACH: {
            struct xb_event ev = { .type = XB_EV_ATTACHED, .err = s->attach_rc };
            sim_log(s, side, a->arg ? "att-re" : "att");
            sim_feed(s, side, &ev);
            break;
        }
        case XB_ACT_DETACH:
            sim_log(s, side, "det");
            break;
        case XB_ACT_REPORT:
            snprintf(buf, sizeof(buf), "%s", event_name(a->arg));
            sim_log(s, side, buf);
            break;
        default:
            break;
        }
    }
}

static void sim_feed(struct sim *s, int side, const struct xb_event *ev)
{
    struct xb_out out;

    pvabi__xb_step(&s->m[side], ev, &out);
    sim_apply(s, side, &out);
}

/* Delivers queued watch events until none is left. */
static void sim_settle(struct sim *s)
{
    for (unsigned steps = 0; s->len > 0; steps++) {
        int changed = s->queue[s->head];
        struct xb_event ev = { .type = XB_EV_PEER_STATE, .peer = (uint8_t)s->node[changed] };
        assert_true(steps < 1000);
        s->head = (s->head + 1) % 64;
        s->len--;
        if (!s->dead[!changed])
            sim_feed(s, !changed, &ev);
    }
}

static void sim_start(struct sim *s, int side)
{
    struct xb_event ev = { .type = XB_EV_START,
                           .own = (uint8_t)s->node[side],
                           .peer = (uint8_t)s->node[!side] };

    pvabi__xb_init(&s->m[side], side == 0 ? XB_FRONT : XB_BACK);
    s->log[side][0] = '\0';
    s->dead[side] = 0;
    sim_feed(s, side, &ev);
}

static void sim_request(struct sim *s, int side, int type)
{
    struct xb_event ev = { .type = (uint8_t)type };
    sim_feed(s, side, &ev);
}

#define FE 0
#define BE 1

/* The toolstack step, both ends started, the frontend connects when ready. */
static void sim_connect(struct sim *s)
{
    memset(s, 0, sizeof(*s));
    s->node[FE] = s->node[BE] = INI;
    sim_start(s, BE);
    sim_start(s, FE);
    sim_settle(s);
    assert_int_equal(pvabi__xb_reached(&s->m[FE], PVABI_XENBUS_EV_PEER_READY), 1);
    sim_request(s, FE, XB_EV_CONNECT);
    sim_settle(s);
}

static void test_xenbus_state_handshake_connects_both_ends(void **state)
{
    struct sim s;

    (void)state;
    sim_connect(&s);
    assert_int_equal(s.node[FE], CON);
    assert_int_equal(s.node[BE], CON);
    assert_string_equal(s.log[FE], "ready connected");
    assert_string_equal(s.log[BE], "att connected");
    assert_int_equal(pvabi__xb_reached(&s.m[FE], PVABI_XENBUS_EV_CONNECTED), 1);
    assert_int_equal(pvabi__xb_reached(&s.m[BE], PVABI_XENBUS_EV_CONNECTED), 1);
}

static void test_xenbus_state_close_started_by_frontend(void **state)
{
    struct sim s;

    (void)state;
    sim_connect(&s);
    sim_request(&s, FE, XB_EV_CLOSE);
    sim_settle(&s);
    assert_int_equal(s.node[FE], CLD);
    assert_int_equal(s.node[BE], CLD);
    assert_string_equal(s.log[FE], "ready connected closed");
    assert_string_equal(s.log[BE], "att connected closing det closed");
    assert_int_equal(pvabi__xb_reached(&s.m[FE], PVABI_XENBUS_EV_CLOSED), 1);
    assert_int_equal(pvabi__xb_reached(&s.m[BE], PVABI_XENBUS_EV_CLOSED), 1);
}

static void test_xenbus_state_close_started_by_backend(void **state)
{
    struct sim s;

    (void)state;
    sim_connect(&s);
    sim_request(&s, BE, XB_EV_CLOSE);
    sim_settle(&s);
    assert_int_equal(s.node[FE], CLD);
    assert_int_equal(s.node[BE], CLD);
    assert_string_equal(s.log[FE], "ready connected closing closed");
    assert_string_equal(s.log[BE], "att connected det closed");
    /* An unplugged backend stays closed when a frontend comes back. */
    s.node[FE] = INI;
    sim_changed(&s, FE);
    sim_settle(&s);
    assert_int_equal(s.node[BE], CLD);
}

/* The frontend process dies (its node vanishes with its domain), the
 * toolstack re-adds the device, a new frontend connects: the same backend
 * machine serves it. */
static void test_xenbus_state_frontend_restart_reconnects_same_backend(void **state)
{
    struct sim s;

    (void)state;
    sim_connect(&s);
    s.dead[FE] = 1;
    s.node[FE] = UNK;
    sim_changed(&s, FE);
    sim_settle(&s);
    assert_int_equal(s.node[BE], CLD);
    assert_string_equal(s.log[BE], "att connected det lost");
    s.node[FE] = INI; /* the toolstack step */
    sim_changed(&s, FE);
    sim_start(&s, FE);
    sim_settle(&s);
    assert_int_equal(s.node[BE], IW);
    assert_string_equal(s.log[FE], "ready");
    sim_request(&s, FE, XB_EV_CONNECT);
    sim_settle(&s);
    assert_int_equal(s.node[FE], CON);
    assert_int_equal(s.node[BE], CON);
    assert_string_equal(s.log[BE], "att connected det lost att connected");
}

/* The same, when the backend sees the new frontend's Initialising before
 * (or instead of) the old one's disappearance. */
static void test_xenbus_state_frontend_restart_seen_as_initialising(void **state)
{
    struct sim s;

    (void)state;
    sim_connect(&s);
    s.node[FE] = INI; /* the old frontend died, the toolstack re-added the device */
    sim_start(&s, FE);
    sim_changed(&s, FE);
    sim_settle(&s);
    assert_string_equal(s.log[BE], "att connected det lost");
    assert_int_equal(s.node[BE], IW);
    assert_string_equal(s.log[FE], "ready");
}

/* The backend process dies and a new one starts with the same domid: it
 * finds both nodes Connected and re-attaches; the frontend, which saw the
 * death, reports CONNECTED again. */
static void test_xenbus_state_backend_restart_reattaches(void **state)
{
    struct sim s;
    struct xb_event gone = { .type = XB_EV_PEER_GONE };

    (void)state;
    sim_connect(&s);
    s.dead[BE] = 1;
    sim_feed(&s, FE, &gone);
    assert_int_equal(pvabi__xb_reached(&s.m[FE], PVABI_XENBUS_EV_CONNECTED), 0);
    sim_start(&s, BE);
    sim_settle(&s);
    assert_string_equal(s.log[BE], "att-re connected");
    assert_string_equal(s.log[FE], "ready connected lost connected");
    assert_int_equal(s.node[FE], CON);
    assert_int_equal(pvabi__xb_reached(&s.m[FE], PVABI_XENBUS_EV_CONNECTED), 1);
    assert_int_equal(pvabi__xb_reached(&s.m[BE], PVABI_XENBUS_EV_CONNECTED), 1);
}

/* A backend that dies before the frontend published, then restarts. */
static void test_xenbus_state_backend_restart_before_connect(void **state)
{
    struct sim s;

    (void)state;
    memset(&s, 0, sizeof(s));
    s.node[FE] = s.node[BE] = INI;
    sim_start(&s, BE);
    sim_start(&s, FE);
    sim_settle(&s);
    s.dead[BE] = 1;
    sim_start(&s, BE); /* a new backend process */
    sim_settle(&s);
    sim_request(&s, FE, XB_EV_CONNECT);
    sim_settle(&s);
    assert_int_equal(s.node[FE], CON);
    assert_string_equal(s.log[BE], "att connected");
}

/* A hostile frontend's ring cannot be attached: the backend reports the
 * error and closes; both end Closed; a frontend that starts over is served. */
static void test_xenbus_state_bad_frontend_closes_then_is_served_again(void **state)
{
    struct sim s;

    (void)state;
    memset(&s, 0, sizeof(s));
    s.node[FE] = s.node[BE] = INI;
    s.attach_rc = -EPROTO;
    sim_start(&s, BE);
    sim_start(&s, FE);
    sim_settle(&s);
    sim_request(&s, FE, XB_EV_CONNECT);
    sim_settle(&s);
    assert_int_equal(s.node[FE], CLD);
    assert_int_equal(s.node[BE], CLD);
    assert_string_equal(s.log[BE], "att error closed");
    assert_string_equal(s.log[FE], "ready closing closed");
    s.attach_rc = 0;
    sim_start(&s, FE);
    sim_settle(&s);
    sim_request(&s, FE, XB_EV_CONNECT);
    sim_settle(&s);
    assert_int_equal(s.node[BE], CON);
    assert_int_equal(s.node[FE], CON);
}

/* ---- small pieces ---------------------------------------------------------------- */

static void test_xenbus_state_numbers_are_xens(void **state)
{
    (void)state;
    assert_int_equal(PVABI_XENBUS_STATE_INITIALISING, 1);
    assert_int_equal(PVABI_XENBUS_STATE_INITWAIT, 2);
    assert_int_equal(PVABI_XENBUS_STATE_INITIALISED, 3);
    assert_int_equal(PVABI_XENBUS_STATE_CONNECTED, 4);
    assert_int_equal(PVABI_XENBUS_STATE_CLOSING, 5);
    assert_int_equal(PVABI_XENBUS_STATE_CLOSED, 6);
    assert_int_equal(PVABI_XENBUS_STATE_RECONFIGURING, 7);
    assert_int_equal(PVABI_XENBUS_STATE_RECONFIGURED, 8);
    assert_string_equal(pvabi_xenbus_state_name(2), "InitWait");
    assert_string_equal(pvabi_xenbus_state_name(9), "Unknown");
    assert_string_equal(pvabi_xenbus_state_name(-1), "Unknown");
}

static void test_xenbus_state_parse_takes_one_digit_only(void **state)
{
    (void)state;
    assert_int_equal(pvabi__xb_parse_state("4", 1), 4);
    assert_int_equal(pvabi__xb_parse_state("0", 1), 0);
    assert_int_equal(pvabi__xb_parse_state("9", 1), XB_UNK);
    assert_int_equal(pvabi__xb_parse_state("", 0), XB_UNK);
    assert_int_equal(pvabi__xb_parse_state("04", 2), XB_UNK);
    assert_int_equal(pvabi__xb_parse_state("4 ", 2), XB_UNK);
    assert_int_equal(pvabi__xb_parse_state("-1", 2), XB_UNK);
    assert_int_equal(pvabi__xb_parse_state(NULL, 0), XB_UNK);
}

static void test_xenbus_state_wait_conditions(void **state)
{
    struct xb_sm f = machine(XB_FRONT, INI, IW, 0), b = machine(XB_BACK, IW, INI, 0);

    (void)state;
    assert_int_equal(pvabi__xb_reached(&f, PVABI_XENBUS_EV_PEER_READY), 1);
    assert_int_equal(pvabi__xb_reached(&f, PVABI_XENBUS_EV_CONNECTED), 0);
    assert_int_equal(pvabi__xb_reached(&b, PVABI_XENBUS_EV_PEER_READY), -EINVAL);
    assert_int_equal(pvabi__xb_reached(&b, 99), -EINVAL);
    f = machine(XB_FRONT, CON, CON, A | L);
    assert_int_equal(pvabi__xb_reached(&f, PVABI_XENBUS_EV_CONNECTED), 0);
    f = machine(XB_FRONT, CLD, CLG, A | U);
    assert_int_equal(pvabi__xb_reached(&f, PVABI_XENBUS_EV_CLOSED), 0);
    f = machine(XB_FRONT, CLD, CLD, U);
    assert_int_equal(pvabi__xb_reached(&f, PVABI_XENBUS_EV_CLOSED), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_xenbus_state_frontend_table),
        cmocka_unit_test(test_xenbus_state_backend_table),
        cmocka_unit_test(test_xenbus_state_frontend_every_event_follows_the_rules),
        cmocka_unit_test(test_xenbus_state_backend_every_event_follows_the_rules),
        cmocka_unit_test(test_xenbus_state_handshake_connects_both_ends),
        cmocka_unit_test(test_xenbus_state_close_started_by_frontend),
        cmocka_unit_test(test_xenbus_state_close_started_by_backend),
        cmocka_unit_test(test_xenbus_state_frontend_restart_reconnects_same_backend),
        cmocka_unit_test(test_xenbus_state_frontend_restart_seen_as_initialising),
        cmocka_unit_test(test_xenbus_state_backend_restart_reattaches),
        cmocka_unit_test(test_xenbus_state_backend_restart_before_connect),
        cmocka_unit_test(test_xenbus_state_bad_frontend_closes_then_is_served_again),
        cmocka_unit_test(test_xenbus_state_numbers_are_xens),
        cmocka_unit_test(test_xenbus_state_parse_takes_one_digit_only),
        cmocka_unit_test(test_xenbus_state_wait_conditions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
