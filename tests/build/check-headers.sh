#!/bin/sh
# Compiles every public header alone, as C11 and as C++, warnings as errors.
# usage: check-headers.sh INCLUDE_DIR HEADER...   (CC and CXX from the environment)
set -eu
incdir=$1; shift
: "${CC:?CC is not set}"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
if [ -z "${CXX:-}" ] || ! command -v "${CXX%% *}" >/dev/null 2>&1; then
    echo "SKIP: no C++ compiler (install g++) to compile the headers as C++"; exit 77
fi
fail=0
for h in "$@"; do
    name=$(basename "$h")
    printf '#include <pvabi/%s>\n#include <pvabi/%s> /* guard */\nint pvabi_header_check_%s;\n' \
        "$name" "$name" "$(echo "$name" | tr -c 'a-z0-9\n' _)" > "$tmp/t.c"
    cp "$tmp/t.c" "$tmp/t.cpp"
    if ! $CC -std=c11 -Wall -Wextra -Werror -pedantic -I"$incdir" -c "$tmp/t.c" -o "$tmp/c.o"; then
        echo "FAIL: $name does not compile alone as C11"; fail=1
    fi
    for std in c++11 c++17; do
        if ! $CXX -std=$std -Wall -Wextra -Werror -I"$incdir" -c "$tmp/t.cpp" -o "$tmp/cpp.o"; then
            echo "FAIL: $name does not compile alone as $std"; fail=1
        fi
    done
    [ $fail -eq 0 ] && echo "ok: $name (C11, C++11, C++17)"
done
# The generated ring functions must not warn where a driver expands the macro
# (a .c file) and calls only some of them, with gcc and with clang.
printf '#include <pvabi/ring.h>\nstruct q { int a; };\nstruct r { int b; };\nPVABI_RING_DEFINE(t, struct q, struct r);\n' > "$tmp/m.c"
for c in "$CC" clang; do
    command -v "${c%% *}" >/dev/null 2>&1 || continue
    if ! $c -std=c11 -Wall -Wextra -Werror -I"$incdir" -c "$tmp/m.c" -o "$tmp/m.o"; then
        echo "FAIL: PVABI_RING_DEFINE warns with $c"; fail=1
    fi
    if ! $c -x c++ -std=c++17 -Wall -Wextra -Werror -I"$incdir" -c "$tmp/m.c" -o "$tmp/m.o"; then
        echo "FAIL: PVABI_RING_DEFINE warns with $c as C++"; fail=1
    fi
done
[ $fail -eq 0 ] && echo "ok: PVABI_RING_DEFINE expands cleanly"
exit $fail
