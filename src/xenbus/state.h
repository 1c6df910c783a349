/* SPDX-License-Identifier: MIT */
/*
 * The XenbusState machine of one end of a device: events in, actions out,
 * no I/O (STYLE.md item 6).  The shell (dev.c, with front.c and back.c)
 * reads the store, feeds events, and carries out the actions in order;
 * tests/unit/test_xenbus_state.c drives it from tables.
 *
 * Rules every output follows (the tests check them for every state, flag
 * and event): a PUBLISH is immediately followed by the SWITCH it goes with
 * (one transaction); REPORTs come after every other action, so a driver
 * callback that calls back into the handle finds the machine settled; an
 * ATTACH is the last action; SWITCHes are the legal transitions drawn in
 * pvabi/xenbus.h.
 *
 * The machine assumes the actions it asks for succeed: when one fails the
 * shell feeds XB_EV_FAILED (or XB_EV_ATTACHED with the error), and the
 * machine reports the error and starts closing.
 */
#ifndef PVABI_XENBUS_STATE_H
#define PVABI_XENBUS_STATE_H

#include <stdint.h>

enum { XB_FRONT = 0, XB_BACK = 1 };

/* Short names for the states inside the library (pvabi/xenbus.h has the
 * public ones). */
enum {
    XB_UNK = 0, /* Unknown: no state node, or garbage in it */
    XB_INI = 1, /* Initialising */
    XB_IW = 2,  /* InitWait */
    XB_ID = 3,  /* Initialised */
    XB_CON = 4, /* Connected */
    XB_CLG = 5, /* Closing */
    XB_CLD = 6, /* Closed */
    XB_RCG = 7, /* Reconfiguring */
    XB_RCD = 8, /* Reconfigured */
};

enum xb_event_type {
    XB_EV_START,      /* own request: take part; .own and .peer as read from the store */
    XB_EV_PEER_STATE, /* the peer's state node now reads .peer (XB_UNK: gone or garbage) */
    XB_EV_PEER_GONE,  /* the peer's domain died */
    XB_EV_CONNECT,    /* own request (frontend): publish the ring */
    XB_EV_CLOSE,      /* own request: the close handshake (unplug) */
    XB_EV_TIMEOUT,    /* a wait for the end of the close handshake ran out */
    XB_EV_ATTACHED,   /* the ATTACH action finished: .err 0 or a negative errno */
    XB_EV_FAILED,     /* another action failed: .err */
};

struct xb_event {
    uint8_t type; /* enum xb_event_type */
    uint8_t own;  /* START */
    uint8_t peer; /* START, PEER_STATE */
    int err;      /* ATTACHED, FAILED */
};

enum xb_action_type {
    XB_ACT_PUBLISH = 1, /* front: ring refs, port, protocol; back: features (with the SWITCH
                           that follows, in one transaction) */
    XB_ACT_ATTACH,      /* back: read and check the ring, map, bind; .arg 1: re-attach.  The
                           shell answers with XB_EV_ATTACHED */
    XB_ACT_DETACH,      /* back: unmap the ring, unbind the port */
    XB_ACT_SWITCH,      /* write our state node: .arg the state */
    XB_ACT_REPORT,      /* tell the driver: .arg a PVABI_XENBUS_EV_* (ERROR: xb_out.err) */
};

struct xb_action {
    uint8_t type;
    uint8_t arg;
};

#define XB_ACTIONS_MAX 5

struct xb_out {
    struct xb_action act[XB_ACTIONS_MAX]; /* carried out in this order */
    unsigned n;
    int rc;          /* own requests: 0, or why it is refused (then no action) */
    int err;         /* for a REPORT of PVABI_XENBUS_EV_ERROR */
    uint8_t ignored; /* the peer showed a transition the protocol does not allow: logged */
};

struct xb_sm {
    uint8_t role;     /* XB_FRONT, XB_BACK */
    uint8_t own;      /* our state, as we last asked to publish it */
    uint8_t peer;     /* the peer's, as last seen */
    uint8_t attached; /* back: ring mapped, port bound; front: ring published */
    uint8_t unplug;   /* we asked to close (back: stay closed) */
    uint8_t lost;     /* front: the backend died; the ring is kept for a re-attach */
    uint8_t closed;   /* back: CLOSED reported since the last InitWait */
};

/* Initialises @sm for @role: everything Unknown. */
void pvabi__xb_init(struct xb_sm *sm, int role);

/* Feeds one event; fills @out (cleared first). */
void pvabi__xb_step(struct xb_sm *sm, const struct xb_event *ev, struct xb_out *out);

/* 1 when a wait for @until (PVABI_XENBUS_EV_PEER_READY, _CONNECTED,
 * _CLOSED) is satisfied in the machine's present state; -EINVAL for an
 * @until the role cannot wait for. */
int pvabi__xb_reached(const struct xb_sm *sm, int until);

/* 0 if a frontend may connect now, else what XB_EV_CONNECT would refuse
 * with: -EISCONN, -ESHUTDOWN, -EAGAIN (the backend is not ready). */
int pvabi__xb_can_connect(const struct xb_sm *sm);

/* The peer state a node's value stands for: "0".."8" exactly, else XB_UNK
 * (absent, empty, garbage, out of range). */
int pvabi__xb_parse_state(const char *value, int len);

#endif
