// SPDX-License-Identifier: MIT
// The generated ring functions used from C++: a round trip through a ring.
#include <pvabi/pvabi.h>

#include <cstdio>
#include <cstdlib>

struct creq {
    unsigned id;
};
struct crsp {
    unsigned id;
    int status;
};
PVABI_RING_DEFINE(cxx, creq, crsp);

int main()
{
    alignas(4096) static unsigned char page[4096 << 1];
    cxx_front f;
    cxx_back b;
    if (cxx_front_init(&f, page, 1) != 0 || cxx_back_attach(&b, page, 1) != 0)
        return 1;
    unsigned sent = 0, answered = 0, received = 0;
    for (int round = 0; round < 1000; round++) {
        while (creq *r = cxx_front_next_req(&f))
            r->id = sent++;
        cxx_front_publish(&f);
        creq in;
        while (cxx_back_copy_req(&b, &in) == 1) {
            if (in.id != answered++)
                return 1;
            crsp *out = cxx_back_next_rsp(&b);
            out->id = in.id;
            out->status = 0;
        }
        cxx_back_publish(&b);
        crsp got;
        while (cxx_front_copy_rsp(&f, &got) == 1)
            if (got.id != received++)
                return 1;
    }
    std::printf("C++: %u requests answered in order\n", received);
    return received == sent && sent > 1000 ? 0 : 1;
}
