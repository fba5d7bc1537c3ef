#!/usr/bin/env bash
# The executor (src/fs_pool.c) under ThreadSanitizer: tools/pool_stress.c, three
# runs without forks and one with (ThreadSanitizer's die_after_fork=0).  About a
# minute on 2 cores.  Fails on any report.
#
#     bash tools/pool_tsan.sh            # CC=clang bash tools/pool_tsan.sh
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
cc="${CC:-gcc}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
"$cc" -O1 -g -fsanitize=thread -pthread -I"$here/src" "$here/tools/pool_stress.c" \
    "$here/src/fs_pool.c" -o "$tmp/pool_stress"
status=0
for run in nofork nofork nofork fork; do
    if [ "$run" = nofork ]; then export NOFORK=1; else unset NOFORK; fi
    if ! TSAN_OPTIONS="die_after_fork=0 halt_on_error=1" "$tmp/pool_stress" > "$tmp/log" 2>&1 \
            || grep -q "WARNING: ThreadSanitizer" "$tmp/log"; then
        echo "pool_stress ($run) failed:"; cat "$tmp/log"; status=1
    else
        echo "pool_stress ($run): $(tail -1 "$tmp/log")"
    fi
done
exit $status
