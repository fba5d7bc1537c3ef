#!/usr/bin/env bash
# The whole pytest suite on aarch64, emulated: an arm64 Debian root (mmdebstrap) run
# through qemu-user (binfmt_misc), with the extension cross-compiled here.  Opt-in, before
# a release: about an hour on 2 cores (the root ~30 min the first time, kept for later
# runs; the suite ~30 min).  Not run by CI (tools/emulated_isas.sh runs the C harness over
# the aarch64 tables there, in minutes).  As root, on x86-64 Debian 12:
#
#   bash tools/arm64_suite.sh [pytest args]          (e.g. -x -k softmax)
#
# Settings (environment): ARM64_ROOT (default /var/cache/fastsoftmax-arm64-root; delete it
# to start over), MIRROR (the Debian mirror; default the one apt uses here), PYTHON (the
# host python that runs Cython and pip download; it needs Cython >= 3).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
root=${ARM64_ROOT:-/var/cache/fastsoftmax-arm64-root}
python=${PYTHON:-python3}
log() { echo "arm64_suite: $*"; }
t_start=$(date +%s)

need=()
for p in qemu-user-static binfmt-support gcc-aarch64-linux-gnu libc6-dev-arm64-cross mmdebstrap arch-test; do
    dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
    apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null
fi
# binfmt: qemu-user-static's registration (its flags let it run inside the chroot)
[ -e /proc/sys/fs/binfmt_misc/register ] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
[ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] || cat /usr/lib/binfmt.d/qemu-aarch64.conf > /proc/sys/fs/binfmt_misc/register

# 1. The root, once: Debian bookworm arm64 with Python 3.11 and a venv of the test needs.
if [ ! -x "$root/venv/bin/python" ]; then
    mirror=${MIRROR:-$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)}
    log "making the arm64 root at $root (about 30 min)"
    # An interrupted mmdebstrap can leave /proc, /sys, /dev/pts mounted in its half-made
    # root: never rm -r through those.
    if grep -q " $root.part/" /proc/mounts; then
        echo "arm64_suite: file systems are still mounted under $root.part: unmount them first" >&2
        exit 1
    fi
    rm -rf "$root.part"
    mmdebstrap --arch=arm64 --variant=apt \
        --include=python3,python3-dev,python3-venv,gcc,libc6-dev,ca-certificates \
        bookworm "$root.part" ${mirror:+"$mirror"}
    chroot "$root.part" python3 -m venv /venv
    # Wheels come from the host's pip (the root need not trust this machine's TLS setup),
    # for cp311 manylinux aarch64, and are installed offline.  Torch and transformers are
    # left out (the tests that use them skip); the rest of the test extras go in.
    "$python" -m pip download -q -d "$root.part/wheels" --only-binary=:all: --python-version 3.11 \
        --implementation cp --abi cp311 --abi abi3 --abi none --platform manylinux_2_28_aarch64 \
        --platform manylinux2014_aarch64 --platform manylinux_2_17_aarch64 --platform any \
        "numpy>=2" pytest hypothesis scipy threadpoolctl ml_dtypes "dask[array,distributed]"
    chroot "$root.part" env -i PATH=/usr/bin:/bin HOME=/root /venv/bin/pip install -q --no-index \
        --find-links /wheels numpy pytest hypothesis scipy threadpoolctl ml_dtypes "dask[array,distributed]"
    # The build at /src imports without PYTHONPATH: tests start child pythons with a bare environment.
    echo /src > "$root.part/venv/lib/python3.11/site-packages/fastsoftmax-src.pth"
    mv "$root.part" "$root"
fi

# 2. The extension, cross-compiled: Cython here, the C by aarch64-linux-gnu-gcc with
#    setup.py's flags, against the root's Python and NumPy headers.
t_build=$(date +%s)
rm -rf "$root/src" && bash "$repo/tools/copy_sources.sh" "$repo" "$root/src"
cd "$root/src"
"$python" -m cython -3 fastsoftmax/_core.pyx -o fastsoftmax/_core.c
inc="-I$root/usr/include/python3.11 -idirafter $root/usr/include -Isrc"
inc="$inc -I$root/venv/lib/python3.11/site-packages/numpy/_core/include"
source "$repo/tools/cflags.sh"
cflags="$FS_CFLAGS $FS_CFLAGS_EXTENSION -g0 -fopenmp -DNPY_NO_DEPRECATED_API=NPY_2_0_API_VERSION"
mkdir -p build-arm64
pids=()
for f in fastsoftmax/_core.c src/*.c; do  # every C file in src/, as setup.py builds
    # shellcheck disable=SC2086
    aarch64-linux-gnu-gcc $cflags $inc -c "$f" -o "build-arm64/$(basename "$f" .c).o" & pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
aarch64-linux-gnu-gcc -shared -fopenmp -pthread build-arm64/*.o -o fastsoftmax/_core.cpython-311-aarch64-linux-gnu.so
log "extension built in $(( $(date +%s) - t_build )) s"

# 3. The suite, in the root (proc and dev bound in; never delete the root while they are).
# Less `python -m fastsoftmax`, whose benchmark table takes longer than its test's 300 s
# under emulation (2048x32000 against NumPy's float64 formula).
mount -t proc proc "$root/proc"
mount --bind /dev "$root/dev"
# Lazily: a child the suite left behind (a timed-out subprocess) may still hold /dev, and a
# plain umount's failure would replace pytest's exit status.
trap 'umount -l "$root/dev" "$root/proc" || true' EXIT
t_suite=$(date +%s)
s=0
chroot "$root" env -i PATH=/venv/bin:/usr/bin:/bin HOME=/root \
    sh -c 'cd /src && python -c "import fastsoftmax._core as c; print(\"arm64 ISAs:\", c.available_isas())" && exec python -m pytest -p no:cacheprovider "$@"' \
    pytest --deselect tests/test_api.py::test_main_module_runs "$@" || s=$?
log "suite: $(( $(date +%s) - t_suite )) s; all: $(( $(date +%s) - t_start )) s; pytest exit status $s"
exit $s
