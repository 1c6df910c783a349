/* SPDX-License-Identifier: MIT */
/* An out-of-tree program built against the installed pvabi, as a user would. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pvabi/pvabi.h>

struct req {
    unsigned id;
};
struct rsp {
    unsigned id;
    int status;
};
PVABI_RING_DEFINE(demo, struct req, struct rsp);

int main(void)
{
    static _Alignas(4096) unsigned char page[4096];
    struct demo_front f;
    struct demo_back b;
    struct req rq;
    struct rsp rs;

    if (demo_front_init(&f, page, 0) || demo_back_attach(&b, page, 0))
        return 1;
    demo_front_next_req(&f)->id = 42;
    demo_front_publish(&f);
    if (demo_back_copy_req(&b, &rq) != 1 || rq.id != 42)
        return 1;
    *demo_back_next_rsp(&b) = (struct rsp){ .id = rq.id, .status = 7 };
    demo_back_publish(&b);
    if (demo_front_copy_rsp(&f, &rs) != 1 || rs.id != 42 || rs.status != 7)
        return 1;

    char buf[64] = { 0 }, out[64] = { 0 };
    uint32_t prod = 0, cons = 0;
    pvabi_flexring *w, *r;
    if (pvabi_flexring_open(&w, buf, sizeof(buf), &prod, &cons, PVABI_FLEXRING_WRITER) ||
        pvabi_flexring_open(&r, buf, sizeof(buf), &prod, &cons, PVABI_FLEXRING_READER))
        return 1;
    if (pvabi_flexring_write(w, "hello", 5) != 5 || pvabi_flexring_read(r, out, sizeof(out)) != 5 ||
        memcmp(out, "hello", 5) != 0)
        return 1;
    pvabi_flexring_close(w);
    pvabi_flexring_close(r);
    printf("consumer: pvabi %s ring and flexring round trips ok\n", pvabi_version());
    return 0;
}
