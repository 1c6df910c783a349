/* SPDX-License-Identifier: MIT */
/*
 * The XenbusState machine (see state.h, and the diagrams in
 * pvabi/xenbus.h).  Pure: it only looks at its arguments.
 *
 * The rules follow Linux's xenbus drivers where they decide (blkback's
 * frontend_changed(), blkfront's backend_changed()), with two additions for
 * processes that restart: a backend that sees its frontend come back
 * (state Initialising, or Initialised/Connected while it is Closed) serves
 * it again, and a frontend keeps its ring while its backend is dead.
 */
#include <errno.h>

#include "pvabi-internal.h"
#include "xenbus/state.h"

#if defined(__has_include)
#if __has_include(<xen/io/xenbus.h>)
#include <xen/io/xenbus.h>
_Static_assert((int)XenbusStateUnknown == (int)PVABI_XENBUS_STATE_UNKNOWN, "xenbus.h numbers");
_Static_assert((int)XenbusStateInitialising == (int)PVABI_XENBUS_STATE_INITIALISING,
               "xenbus.h numbers");
_Static_assert((int)XenbusStateInitWait == (int)PVABI_XENBUS_STATE_INITWAIT, "xenbus.h numbers");
_Static_assert((int)XenbusStateInitialised == (int)PVABI_XENBUS_STATE_INITIALISED,
               "xenbus.h numbers");
_Static_assert((int)XenbusStateConnected == (int)PVABI_XENBUS_STATE_CONNECTED, "xenbus.h numbers");
_Static_assert((int)XenbusStateClosing == (int)PVABI_XENBUS_STATE_CLOSING, "xenbus.h numbers");
_Static_assert((int)XenbusStateClosed == (int)PVABI_XENBUS_STATE_CLOSED, "xenbus.h numbers");
_Static_assert((int)XenbusStateReconfiguring == (int)PVABI_XENBUS_STATE_RECONFIGURING,
               "xenbus.h numbers");
_Static_assert((int)XenbusStateReconfigured == (int)PVABI_XENBUS_STATE_RECONFIGURED,
               "xenbus.h numbers");
#endif
#endif
_Static_assert((int)XB_CON == (int)PVABI_XENBUS_STATE_CONNECTED &&
                   (int)XB_RCD == (int)PVABI_XENBUS_STATE_RECONFIGURED,
               "short names");

static const char *const state_names[] = {
    "Unknown", "Initialising", "InitWait",      "Initialised",  "Connected",
    "Closing", "Closed",       "Reconfiguring", "Reconfigured",
};

PVABI_EXPORT const char *pvabi_xenbus_state_name(int state)
{
    return state >= 0 && state <= XB_RCD ? state_names[state] : "Unknown";
}

int pvabi__xb_parse_state(const char *value, int len)
{
    if (!value || len != 1 || value[0] < '0' || value[0] > '8')
        return XB_UNK;
    return value[0] - '0';
}

void pvabi__xb_init(struct xb_sm *sm, int role)
{
    *sm = (struct xb_sm){ .role = (uint8_t)role };
}

/* ---- building the output ------------------------------------------------ */

static void act(struct xb_out *out, int type, int arg)
{
    /* XB_ACTIONS_MAX is the longest list below; the unit tests check every
     * transition against it. */
    if (out->n < XB_ACTIONS_MAX)
        out->act[out->n++] = (struct xb_action){ .type = (uint8_t)type, .arg = (uint8_t)arg };
}

static void to(struct xb_sm *sm, struct xb_out *out, int state)
{
    sm->own = (uint8_t)state;
    act(out, XB_ACT_SWITCH, state);
}

static void report(struct xb_out *out, int event)
{
    act(out, XB_ACT_REPORT, event);
}

static void detach(struct xb_sm *sm, struct xb_out *out)
{
    if (sm->role == XB_BACK && sm->attached)
        act(out, XB_ACT_DETACH, 0);
    sm->attached = 0;
}

/* The handshake is over: the backend no longer maps the ring. */
static void closed(struct xb_sm *sm, struct xb_out *out)
{
    detach(sm, out);
    if (sm->role == XB_BACK)
        sm->closed = 1;
    report(out, PVABI_XENBUS_EV_CLOSED);
}

/* Closed now: detach, switch, report. */
static void close_now(struct xb_sm *sm, struct xb_out *out)
{
    detach(sm, out);
    to(sm, out, XB_CLD);
    closed(sm, out);
}

/* ---- frontend --------------------------------------------------------- */

static void front_start(struct xb_sm *sm, const struct xb_event *ev, struct xb_out *out)
{
    sm->own = ev->own;
    sm->peer = ev->peer;
    sm->attached = sm->unplug = sm->lost = sm->closed = 0;
    /* A state left by a previous life: starting over tells the backend. */
    if (sm->own != XB_INI)
        to(sm, out, XB_INI);
    if (sm->peer == XB_IW || sm->peer == XB_ID)
        report(out, PVABI_XENBUS_EV_PEER_READY);
}

/* The backend shows InitWait or Initialised (both: "read my features"). */
static void front_peer_ready(struct xb_sm *sm, int peer, int was_lost, struct xb_out *out)
{
    if (sm->own == XB_INI) {
        report(out, PVABI_XENBUS_EV_PEER_READY);
    } else if (sm->own == XB_CON && peer == XB_IW) {
        /* A backend that started from scratch: our connection is gone;
         * start over, and let the driver connect again. */
        sm->attached = 0;
        to(sm, out, XB_INI);
        if (!was_lost)
            report(out, PVABI_XENBUS_EV_PEER_LOST);
        report(out, PVABI_XENBUS_EV_PEER_READY);
    } else if (sm->own == XB_CON) {
        out->ignored = 1; /* Connected -> Initialised */
    }
}

static void front_peer_closing(struct xb_sm *sm, struct xb_out *out)
{
    if (sm->own == XB_ID || sm->own == XB_CON) {
        to(sm, out, XB_CLG); /* the backend started it: answer */
        report(out, PVABI_XENBUS_EV_CLOSING);
    } else if (sm->own == XB_CLG) {
        to(sm, out, XB_CLD); /* we started it: the backend answered */
    }
}

static void front_peer_closed(struct xb_sm *sm, struct xb_out *out)
{
    if (sm->own == XB_ID || sm->own == XB_CON || sm->own == XB_CLG) {
        close_now(sm, out);
    } else if (sm->own == XB_CLD && sm->attached) {
        closed(sm, out);
    }
}

static void front_peer_state(struct xb_sm *sm, int peer, struct xb_out *out)
{
    int was_lost = sm->lost;

    /* A value seen before says nothing new, except Connected after a death:
     * a restarted backend rewrites it when it has re-attached. */
    if (peer == sm->peer && !(was_lost && peer == XB_CON))
        return;
    sm->peer = (uint8_t)peer;
    if (peer != XB_UNK)
        sm->lost = 0;
    switch (peer) {
    case XB_IW:
    case XB_ID:
        front_peer_ready(sm, peer, was_lost, out);
        break;
    case XB_CON:
        if (sm->own == XB_ID) {
            to(sm, out, XB_CON);
            report(out, PVABI_XENBUS_EV_CONNECTED);
        } else if (sm->own == XB_CON && was_lost) {
            report(out, PVABI_XENBUS_EV_CONNECTED);
        }
        break;
    case XB_CLG:
        front_peer_closing(sm, out);
        break;
    case XB_CLD:
        front_peer_closed(sm, out);
        break;
    case XB_UNK:
        if (sm->own == XB_CLG || sm->own == XB_CLD) {
            front_peer_closed(sm, out);
        } else if (!was_lost) {
            sm->lost = 1;
            report(out, PVABI_XENBUS_EV_PEER_LOST);
        }
        break;
    case XB_INI:
        break; /* the toolstack re-added the device: the backend moves on by itself */
    default:
        out->ignored = 1; /* Reconfiguring/Reconfigured: not used here */
        break;
    }
}

static void front_peer_gone(struct xb_sm *sm, struct xb_out *out)
{
    if (sm->own == XB_CLG) {
        close_now(sm, out); /* nobody is left to answer */
    } else if (sm->own == XB_CLD) {
        if (sm->attached)
            closed(sm, out);
    } else if (!sm->lost) {
        sm->lost = 1;
        report(out, PVABI_XENBUS_EV_PEER_LOST);
    }
}

int pvabi__xb_can_connect(const struct xb_sm *sm)
{
    if (sm->role != XB_FRONT)
        return -EINVAL;
    if (sm->own == XB_ID || sm->own == XB_CON)
        return -EISCONN;
    if (sm->own == XB_CLG || sm->own == XB_CLD)
        return -ESHUTDOWN;
    /* A backend still Initialising takes default parameters (blkif.h); one
     * that is Connected or closing is a previous connection's. */
    if (sm->own != XB_INI || !(sm->peer == XB_INI || sm->peer == XB_IW || sm->peer == XB_ID))
        return -EAGAIN;
    return 0;
}

static void front_connect(struct xb_sm *sm, struct xb_out *out)
{
    out->rc = pvabi__xb_can_connect(sm);
    if (out->rc < 0)
        return;
    sm->attached = 1;
    act(out, XB_ACT_PUBLISH, 0);
    to(sm, out, XB_ID);
}

static void front_close(struct xb_sm *sm, struct xb_out *out)
{
    if (sm->own == XB_CLG || sm->own == XB_CLD)
        return;
    sm->unplug = 1;
    if (!sm->attached || sm->lost || sm->peer == XB_UNK) {
        close_now(sm, out); /* no backend maps our ring: nothing to wait for */
    } else {
        to(sm, out, XB_CLG);
    }
}

static void front_step(struct xb_sm *sm, const struct xb_event *ev, struct xb_out *out)
{
    switch (ev->type) {
    case XB_EV_START:
        front_start(sm, ev, out);
        break;
    case XB_EV_PEER_STATE:
        front_peer_state(sm, ev->peer, out);
        break;
    case XB_EV_PEER_GONE:
        front_peer_gone(sm, out);
        break;
    case XB_EV_CONNECT:
        front_connect(sm, out);
        break;
    case XB_EV_CLOSE:
        front_close(sm, out);
        break;
    case XB_EV_TIMEOUT:
        if (sm->own == XB_CLG)
            to(sm, out, XB_CLD);
        if (sm->own == XB_CLD && sm->attached)
            closed(sm, out);
        break;
    default:
        out->rc = -EINVAL; /* ATTACHED: a frontend attaches nothing; FAILED: in step() */
        break;
    }
}

/* ---- backend ---------------------------------------------------------- */

/* Enter InitWait: advertise the features with the state, in one go. */
static void back_advertise(struct xb_sm *sm, struct xb_out *out)
{
    sm->closed = 0;
    act(out, XB_ACT_PUBLISH, 0);
    to(sm, out, XB_IW);
}

static void back_start(struct xb_sm *sm, const struct xb_event *ev, struct xb_out *out)
{
    sm->own = ev->own;
    sm->peer = ev->peer;
    sm->attached = sm->unplug = sm->lost = sm->closed = 0;
    if (sm->own == XB_CON && sm->peer == XB_CON) {
        act(out, XB_ACT_ATTACH, 1); /* we replace a backend that died: re-attach */
        return;
    }
    back_advertise(sm, out);
    if (sm->peer == XB_ID || sm->peer == XB_CON)
        act(out, XB_ACT_ATTACH, sm->peer == XB_CON);
}

/* The frontend shows Initialising: a new one, or the old one restarted. */
static void back_peer_initialising(struct xb_sm *sm, struct xb_out *out)
{
    int was_attached = sm->attached;

    if (sm->unplug) {
        if (sm->own == XB_CLG) {
            close_now(sm, out);
        }
        return;
    }
    if (sm->own == XB_IW)
        return;
    detach(sm, out);
    back_advertise(sm, out);
    if (was_attached)
        report(out, PVABI_XENBUS_EV_PEER_LOST);
}

/* The frontend published its ring (Initialised), or says Connected. */
static void back_peer_published(struct xb_sm *sm, int peer, struct xb_out *out)
{
    if (sm->unplug)
        return;
    if (sm->own == XB_IW) {
        if (!sm->attached)
            act(out, XB_ACT_ATTACH, peer == XB_CON);
    } else if (sm->own == XB_CON) {
        if (peer == XB_ID)
            out->ignored = 1; /* Connected -> Initialised */
    } else if (sm->own == XB_CLG) {
        out->ignored = 1; /* we are closing: it must start over from Initialising */
    } else {
        /* Closed (or not started): a frontend that came back faster than we
         * saw its Initialising. */
        detach(sm, out);
        back_advertise(sm, out);
        act(out, XB_ACT_ATTACH, peer == XB_CON);
    }
}

/* The frontend vanished (its node or its domain) without a handshake;
 * @was: its state before. */
static void back_peer_lost(struct xb_sm *sm, int was, struct xb_out *out)
{
    if (sm->own == XB_CLG) {
        close_now(sm, out);
    } else if (sm->attached || sm->own != XB_CLD) {
        /* Nobody to serve: Closed until a frontend shows Initialising.  A
         * frontend that was there (attached or not yet) is reported. */
        detach(sm, out);
        to(sm, out, XB_CLD);
        if (was != XB_UNK)
            report(out, PVABI_XENBUS_EV_PEER_LOST);
    }
}

static void back_peer_state(struct xb_sm *sm, int peer, struct xb_out *out)
{
    int was = sm->peer;

    if (peer == was)
        return;
    sm->peer = (uint8_t)peer;
    switch (peer) {
    case XB_INI:
        back_peer_initialising(sm, out);
        break;
    case XB_ID:
    case XB_CON:
        back_peer_published(sm, peer, out);
        break;
    case XB_CLG:
        if (sm->own == XB_IW || sm->own == XB_CON) {
            to(sm, out, XB_CLG); /* answer; the ring stays mapped until Closed */
            report(out, PVABI_XENBUS_EV_CLOSING);
        } else if (sm->own == XB_CLG) {
            detach(sm, out); /* we started it: the frontend answered */
            to(sm, out, XB_CLD);
        }
        break;
    case XB_CLD:
        if (sm->own == XB_IW || sm->own == XB_CON || sm->own == XB_CLG) {
            close_now(sm, out);
        } else if (sm->own == XB_CLD && !sm->closed) {
            closed(sm, out);
        }
        break;
    case XB_UNK:
        back_peer_lost(sm, was, out);
        break;
    default:
        out->ignored = 1; /* InitWait is a backend's state; 7, 8 not used here */
        break;
    }
}

static void back_close(struct xb_sm *sm, struct xb_out *out)
{
    int was = sm->unplug;

    sm->unplug = 1;
    if (sm->own == XB_CLG || sm->own == XB_CLD || was)
        return;
    if (sm->attached) {
        to(sm, out, XB_CLG);
    } else {
        close_now(sm, out); /* no frontend connected: nothing to hand over */
    }
}

static void back_attached(struct xb_sm *sm, const struct xb_event *ev, struct xb_out *out)
{
    if (ev->err < 0) {
        out->err = ev->err;
        to(sm, out, XB_CLG);
        report(out, PVABI_XENBUS_EV_ERROR);
        return;
    }
    sm->attached = 1;
    sm->closed = 0;
    to(sm, out, XB_CON); /* also rewrites Connected after a re-attach: the frontend's signal */
    report(out, PVABI_XENBUS_EV_CONNECTED);
}

static void back_step(struct xb_sm *sm, const struct xb_event *ev, struct xb_out *out)
{
    switch (ev->type) {
    case XB_EV_START:
        back_start(sm, ev, out);
        break;
    case XB_EV_PEER_STATE:
        back_peer_state(sm, ev->peer, out);
        break;
    case XB_EV_PEER_GONE: {
        int was = sm->peer;
        sm->peer = XB_UNK;
        back_peer_lost(sm, was, out);
        break;
    }
    case XB_EV_CLOSE:
        back_close(sm, out);
        break;
    case XB_EV_TIMEOUT:
        if (sm->own == XB_CLG) {
            close_now(sm, out);
        }
        break;
    case XB_EV_ATTACHED:
        back_attached(sm, ev, out);
        break;
    default:
        out->rc = -EINVAL; /* CONNECT is a frontend's request */
        break;
    }
}

/* ---- both ---------------------------------------------------------------- */

void pvabi__xb_step(struct xb_sm *sm, const struct xb_event *ev, struct xb_out *out)
{
    *out = (struct xb_out){ 0 };
    if (ev->type == XB_EV_FAILED) {
        /* What Linux's xenbus_dev_fatal() does: say why, and close. */
        out->err = ev->err;
        if (sm->own != XB_CLG && sm->own != XB_CLD)
            to(sm, out, XB_CLG);
        report(out, PVABI_XENBUS_EV_ERROR);
        return;
    }
    if (sm->role == XB_FRONT)
        front_step(sm, ev, out);
    else
        back_step(sm, ev, out);
}

int pvabi__xb_reached(const struct xb_sm *sm, int until)
{
    switch (until) {
    case PVABI_XENBUS_EV_PEER_READY:
        if (sm->role != XB_FRONT)
            return -EINVAL;
        return (sm->own == XB_INI && (sm->peer == XB_IW || sm->peer == XB_ID)) ||
               sm->own == XB_ID || sm->own == XB_CON;
    case PVABI_XENBUS_EV_CONNECTED:
        return sm->own == XB_CON && sm->attached && !sm->lost;
    case PVABI_XENBUS_EV_CLOSED:
        return sm->own == XB_CLD && !sm->attached;
    default:
        return -EINVAL;
    }
}
