#!/usr/bin/env bash
# Build fastsoftmax with AddressSanitizer + UndefinedBehaviorSanitizer and run the tests under it.
#
# Usage (from anywhere; needs gcc or clang with the sanitizer runtimes, and the
# test requirements installed in the python that runs it):
#
#     tools/sanitize.sh                        # the whole test suite
#     tools/sanitize.sh tests/test_softmax.py  # arguments go to pytest
#     tools/sanitize.sh -k long_row -x
#
# What it does:
#   1. Copies this checkout's sources (tracked files and untracked, not-ignored
#      ones: your uncommitted edits and new tests too, no build products) into
#      a temporary directory.  The checkout itself, and any editable install of
#      it, are left alone.
#   2. Builds the extension in place there with
#        CC="gcc -fsanitize=address,undefined,alignment -fno-omit-frame-pointer -g"
#      (UBSan's alignment check is named explicitly: NumPy hands the kernels
#      C-contiguous arrays that are not aligned to their element size, which
#      the kernels must only touch through memcpy, and x86 hardware forgives a
#      misaligned access silently, so this check is what sees one; see
#      tests/test_unaligned.py)
#      (the flags are part of CC so that setup.py's OpenMP probe, which links an
#      executable, is instrumented too and still finds OpenMP) and
#      FASTSOFTMAX_EXTRA_CFLAGS=-O1, which setup.py puts last on each compile
#      line, so it overrides setup.py's -O3.  It checks that the module links
#      the ASan runtime.
#   3. Runs `python -m pytest --capture=sys` in the copy (UBSan reports on file
#      descriptor 2, see below, which pytest then leaves alone) with
#        LD_PRELOAD=<libasan.so>:<libstdc++.so>  (the interpreter is not
#                                  instrumented: the ASan runtime has to be loaded
#                                  first; libstdc++ so that C++ exceptions in
#                                  other extensions, e.g. jaxlib, still work)
#        ASAN_OPTIONS=detect_leaks=0:...   (CPython's own allocations at exit are
#                                  not leaks of ours)
#        UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
#        PYTHONMALLOC=malloc      (Python objects through malloc, so ASan sees
#                                  them too)
#        PYTHONPATH=<the copy>    (python subprocesses the tests start import
#                                  the instrumented build as well; a test that
#                                  replaces the whole environment gets whatever
#                                  fastsoftmax is installed instead)
#   4. Fails (exit status 1) if pytest fails or the sanitizers reported
#      anything, and prints the reports.  ASan's are written to files
#      (ASAN_OPTIONS log_path=<build dir>/reports/), because pytest captures
#      stderr and a halted process never shows it; reports of forked children
#      and python subprocesses land there too.  GCC 12's libubsan ignores
#      log_path and writes to stderr: its reports reach the pytest log through
#      --capture=sys (those of a python subprocess reach it only if the test
#      prints the child's stderr).  The build directory is kept when anything
#      failed.
#
# Environment knobs:
#   PYTHON            the interpreter to build and test with (default: python3)
#   SANITIZE_CC       compiler (default: gcc, else cc)
#   SANITIZE_FLAGS    sanitizer flags (default: -fsanitize=address,undefined,alignment
#                     -fno-omit-frame-pointer -g); add e.g.
#                     -fsanitize=float-cast-overflow for more checks
#   SANITIZE_OPT      optimization level (default: -O1)
#   SANITIZE_KEEP=1   keep the temporary build directory (it is printed)
#
# The opt-in big-array test (FASTSOFTMAX_TEST_BIG=1) is not meant to run under
# ASan (its shadow memory would need another ~2 GB and it is slow); the leak
# test skips itself under ASan, whose quarantine holds on to freed memory.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-python3}"
cc="${SANITIZE_CC:-$(command -v gcc || command -v cc)}"
flags="${SANITIZE_FLAGS:--fsanitize=address,undefined,alignment -fno-omit-frame-pointer -g}"
opt="${SANITIZE_OPT:--O1}"

work="$(mktemp -d "${TMPDIR:-/tmp}/fastsoftmax-sanitize.XXXXXX")"
log="$work/pytest.log"
cleanup() {
    if [ "${SANITIZE_KEEP:-0}" != 1 ] && [ "${status:-1}" = 0 ]; then
        rm -rf "$work"
    else
        echo "sanitize: build directory kept: $work"
    fi
}
trap cleanup EXIT

# 1. the sources
src="$work/src"
bash "$repo/tools/copy_sources.sh" "$repo" "$src"
echo "sanitize: sources of $repo copied to $src"

# 2. the instrumented build
libasan="$("$cc" -print-file-name=libasan.so)"
if [ ! -e "$libasan" ]; then
    echo "sanitize: $cc has no libasan.so (install the compiler's sanitizer runtime)" >&2
    exit 2
fi
(
    cd "$src"
    CC="$cc $flags" FASTSOFTMAX_EXTRA_CFLAGS="$opt" \
        "$python" setup.py build_ext --inplace >"$work/build.log" 2>&1
) || { cat "$work/build.log"; echo "sanitize: the build failed" >&2; exit 2; }
module="$(ls "$src"/fastsoftmax/_core*.so)"
if ! ldd "$module" | grep libasan >/dev/null; then
    echo "sanitize: $module does not link libasan: the flags did not reach the build" >&2
    exit 2
fi
grep -q -- "-fopenmp" "$work/build.log" || echo "sanitize: WARNING: built without OpenMP"
echo "sanitize: built $module with: $cc $flags $opt"

# 3. the tests
# libstdc++ is preloaded right after libasan: otherwise ASan's __cxa_throw
# interceptor finds no real __cxa_throw and aborts the first C++ exception of
# another extension (e.g. jaxlib, imported by `python -m fastsoftmax`).
preload="$libasan"
libstdcxx="$("$cc" -print-file-name=libstdc++.so)"
[ -e "$libstdcxx" ] && preload="$preload:$libstdcxx"
export LD_PRELOAD="$preload${LD_PRELOAD:+:$LD_PRELOAD}"
# Reports go to files: pytest captures stderr, and a process that the sanitizer
# halts never prints what it captured.
reports_dir="$work/reports"
mkdir -p "$reports_dir"
export ASAN_OPTIONS="detect_leaks=0:halt_on_error=1:abort_on_error=0:log_path=$reports_dir/asan${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:log_path=$reports_dir/ubsan${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
export PYTHONMALLOC=malloc
export PYTHONPATH="$src${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONDONTWRITEBYTECODE=1
cd "$src"
"$python" -c "import fastsoftmax, sys; assert fastsoftmax.__file__.startswith('$src'), fastsoftmax.__file__; fastsoftmax.show_config()"
set +e
# --capture=sys: pytest captures Python's sys.stdout/stderr but leaves file
# descriptor 2 alone.  GCC's libubsan ignores log_path and reports on fd 2;
# with pytest's default fd capture, a report that halts the process would be
# swallowed with the captured output, leaving only "pytest failed".
"$python" -m pytest -p no:cacheprovider --capture=sys "$@" 2>&1 | tee "$log"
pytest_status=${PIPESTATUS[0]}
set -e

# 4. the verdict
pattern="ERROR: (Address|Leak)Sanitizer|AddressSanitizer: CHECK failed|runtime error:|SUMMARY: [A-Za-z]+Sanitizer"
reports="$(grep -nE "$pattern" "$log" || true)"
report_files="$(find "$reports_dir" -type f -size +0 | sort)"
if [ -n "$reports" ] || [ -n "$report_files" ]; then
    echo "sanitize: SANITIZER REPORTS (pytest log: $log):"
    [ -n "$reports" ] && echo "$reports"
    for f in $report_files; do
        echo "---- $f"
        cat "$f"
    done
    status=1
elif [ "$pytest_status" != 0 ]; then
    echo "sanitize: pytest failed (exit status $pytest_status; log: $log)"
    status=1
else
    echo "sanitize: clean: no sanitizer reports, all tests passed"
    status=0
fi
exit "$status"
