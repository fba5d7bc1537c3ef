#!/usr/bin/env bash
# One run on a lent many-core machine (see README, Development): record its CPU, run
# benchmarks/scaling.py at 1..16 threads and benchmarks/stream_offsets.py, then the whole
# test suite (there, most likely, on the AVX-512 kernels).  Outputs go to ${OUT:-.}.
#
# The extension is built in place with that machine's Python unless one built for it
# already imports (a build for its Python made elsewhere and carried along saves the
# machine's time).  Extra commands, such as a peer comparison, can follow in
# DEVICE_CHECK_EXTRA; they run before the test suite.
set -uo pipefail
out="${OUT:-.}"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD"  # built in place, not installed
if ! python3 -c "import fastsoftmax" 2> /dev/null; then
    python3 setup.py build_ext --inplace -q > "$out/build.log" 2>&1 || { tail -30 "$out/build.log"; exit 1; }
fi
lscpu > "$out/lscpu.txt"
python3 -c "import fastsoftmax as fs, numpy as np; print('kernels', fs._core.isa(), 'numpy', np.__version__, fs._core.kernel_info()[fs._core.isa()])"
timeout 200 python3 benchmarks/scaling.py --threads 1 2 4 8 16 --markdown "$out/scaling.md" \
    > "$out/scaling.log" 2>&1
echo "scaling rc=$?"; cat "$out/scaling.md" 2>/dev/null
timeout 90 python3 benchmarks/stream_offsets.py --repeats 7 2>&1 | tee "$out/stream_offsets.log"
if [ -n "${DEVICE_CHECK_EXTRA:-}" ]; then
    bash -c "$DEVICE_CHECK_EXTRA" 2>&1 | tee "$out/extra.log"
fi
timeout "${DEVICE_CHECK_PYTEST_SECONDS:-300}" python3 -m pytest -q -p no:cacheprovider \
    ${DEVICE_CHECK_PYTEST_ARGS:-} 2>&1 | tee "$out/pytest.log" | tail -25
