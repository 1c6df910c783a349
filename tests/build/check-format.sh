#!/bin/sh
# Every C/C++ file git tracks is formatted as .clang-format says.
# usage: check-format.sh SOURCE_ROOT
set -eu
cd "$1"
command -v clang-format >/dev/null || { echo "SKIP: clang-format is not installed"; exit 77; }
[ -d .git ] || git rev-parse --git-dir >/dev/null 2>&1 || { echo "SKIP: not a git checkout"; exit 77; }
files=$(git ls-files -co --exclude-standard '*.c' '*.h' '*.cpp')
[ -n "$files" ] || { echo "FAIL: no source files found"; exit 1; }
# shellcheck disable=SC2086 # one word per file
if ! clang-format --dry-run --Werror $files; then
    echo "FAIL: run 'clang-format -i' on the files above"; exit 1
fi
echo "ok: $(echo "$files" | wc -l) files formatted"
