#!/usr/bin/env bash
# Build fastsoftmax with another C compiler and run the test suite against that build.
#
# Usage (from anywhere; the test requirements must be installed in the python
# that runs it):
#
#     tools/test_with_compiler.sh clang-14                 # the whole suite
#     tools/test_with_compiler.sh clang-14 -k cross_entropy -x
#
# Why: release wheels are built by other compilers than this machine's gcc
# (Apple clang on macOS, with LLVM's libomp).  The kernels lean on GCC/Clang
# vector extensions and FMA contraction, so a compiler that reads them
# differently should fail here, not on a user's machine.  On Debian,
# `apt-get install clang-14 libomp-14-dev` gives clang with its OpenMP runtime.
#
# What it does: copies the sources (tools/copy_sources.sh: no build products)
# to a temporary directory, builds the extension in place there with
# CC=<compiler> and LDSHARED="<compiler> -shared" (setup.py probes the
# compiler's OpenMP as usual), prints which kernels and OpenMP runtime the
# build got, then runs `python -m pytest` there, so that directory's build is
# the one imported.  The directory is removed afterwards unless KEEP=1.
set -euo pipefail

if [ $# -lt 1 ] || [ "$1" = "-h" ] || [ "$1" = "--help" ]; then
    sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
fi
compiler=$1
shift
command -v "$compiler" >/dev/null || { echo "test_with_compiler: no compiler '$compiler' on PATH" >&2; exit 2; }

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-python3}"
work="$(mktemp -d "${TMPDIR:-/tmp}/fastsoftmax-$(basename "$compiler").XXXXXX")"
cleanup() {
    if [ "${KEEP:-0}" = 1 ]; then
        echo "test_with_compiler: build directory kept: $work"
    else
        rm -rf "$work"
    fi
}
trap cleanup EXIT

bash "$repo/tools/copy_sources.sh" "$repo" "$work"
cd "$work"
echo "test_with_compiler: building with $("$compiler" --version | head -n 1)"
CC="$compiler" LDSHARED="$compiler -shared" "$python" setup.py build_ext --inplace \
    > "$work/build.log" 2>&1 || { cat "$work/build.log"; echo "test_with_compiler: build failed" >&2; exit 1; }
grep -E "warning|WITHOUT" "$work/build.log" || true
# `python -c` and `python -m pytest` put the current directory first on
# sys.path: this build, not an installed fastsoftmax, is imported.
"$python" -c "
import fastsoftmax, fastsoftmax._core as core
assert fastsoftmax.__file__.startswith('$work'), fastsoftmax.__file__
fastsoftmax.show_config()
"
ldd fastsoftmax/_core*.so | grep -E "omp" || echo "  (no OpenMP runtime linked)"
"$python" -m pytest -p no:cacheprovider "$@"
