#!/usr/bin/env bash
# The sampler, top_k and the 16-bit kernels of every ISA, line for line the same
# (tools/isa_check.c):
# the x86 tables this CPU runs natively, and, where an aarch64 cross-compiler and
# qemu-user are installed (gcc-aarch64-linux-gnu, qemu-user-static), the NEON and
# plain-C tables of an aarch64 build.  Exit status 1 on any difference.
#   bash tools/isa_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
flags="-O3 -fno-math-errno -ffp-contract=fast -Wno-psabi -Isrc"
sources="tools/isa_check.c $(echo src/*.c)"  # every C file in src/, as setup.py builds
gcc $flags -pthread -o "$tmp/native" $sources -lm
runs=()
for isa in avx512 avx2 baseline scalar; do
    if "$tmp/native" "$isa" > "$tmp/x86-$isa.txt" 2>/dev/null; then runs+=("x86-$isa"); fi
done
if command -v aarch64-linux-gnu-gcc >/dev/null && command -v qemu-aarch64-static >/dev/null; then
    aarch64-linux-gnu-gcc $flags -pthread -o "$tmp/arm64" $sources -lm
    for isa in baseline scalar; do
        QEMU_LD_PREFIX=/usr/aarch64-linux-gnu qemu-aarch64-static "$tmp/arm64" "$isa" \
            > "$tmp/arm64-$isa.txt"
        runs+=("arm64-$isa")
    done
else
    echo "no aarch64 cross-compiler or qemu-user: x86 tables only"
fi
status=0
first=${runs[0]}
for run in "${runs[@]}"; do
    # The 16-bit lines check each table against itself: a failure there fails even if
    # every table fails alike.
    if grep -q DIFFERENT "$tmp/$run.txt"; then
        echo "$run: a 16-bit kernel differs from its float32 kernel or its rounding:"
        grep DIFFERENT "$tmp/$run.txt" | head -10
        status=1
    fi
    if cmp -s "$tmp/$first.txt" "$tmp/$run.txt"; then
        echo "$run: $(wc -l < "$tmp/$run.txt") lines, the same as $first"
    else
        echo "$run differs from $first:"
        diff "$tmp/$first.txt" "$tmp/$run.txt" | head -20
        status=1
    fi
done
exit $status
