#!/usr/bin/env bash
# The sampler, top_k and the 16-bit kernels of every ISA, line for line the same
# (tools/isa_check.c):
# the x86 tables this CPU runs natively, and, where an aarch64 cross-compiler and
# qemu-user are installed (gcc-aarch64-linux-gnu, qemu-user-static), the NEON and
# plain-C tables of an aarch64 build.  Exit status 1 on any difference.
#   bash tools/isa_check.sh
# Prebuilt binaries of tools/isa_check.c linked with every src/*.c may be given instead:
# ISA_CHECK_X86 (x86-64) and ISA_CHECK_ARM64 (aarch64).  tools/emulated_isas.sh links them
# from the kernel objects it has compiled anyway, so CI compiles the kernels once per
# architecture, not twice.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
source tools/cflags.sh
flags="$FS_CFLAGS -Isrc"
sources="tools/isa_check.c $(echo src/*.c)"  # every C file in src/, as setup.py builds
native=${ISA_CHECK_X86:-}
if [ -z "$native" ]; then
    native=$tmp/native
    gcc $flags -pthread -o "$native" $sources -lm
fi
runs=()
for isa in avx512 avx2 baseline scalar; do
    if "$native" "$isa" > "$tmp/x86-$isa.txt" 2>/dev/null; then runs+=("x86-$isa"); fi
done
arm64=${ISA_CHECK_ARM64:-}
if [ -z "$arm64" ] && command -v aarch64-linux-gnu-gcc >/dev/null \
        && command -v qemu-aarch64-static >/dev/null; then
    arm64=$tmp/arm64
    aarch64-linux-gnu-gcc $flags -pthread -o "$arm64" $sources -lm
fi
if [ -n "$arm64" ]; then
    for isa in baseline scalar; do
        QEMU_LD_PREFIX=/usr/aarch64-linux-gnu qemu-aarch64-static "$arm64" "$isa" \
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
