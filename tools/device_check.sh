#!/usr/bin/env bash
# One run on a lent many-core machine (see README, Development): build in place with that
# machine's Python, record its CPU, run benchmarks/scaling.py at 1..16 threads, then the
# whole test suite (there, most likely, on the AVX-512 kernels).  Outputs go to ${OUT:-.}.
set -uo pipefail
out="${OUT:-.}"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD"  # built in place, not installed
python3 setup.py build_ext --inplace -q > "$out/build.log" 2>&1 || { tail -30 "$out/build.log"; exit 1; }
lscpu > "$out/lscpu.txt"
python3 -c "import fastsoftmax as fs, numpy as np; print('kernels', fs._core.isa(), 'numpy', np.__version__)"
timeout 240 python3 benchmarks/scaling.py --threads 1 2 4 8 16 --markdown "$out/scaling.md" \
    > "$out/scaling.log" 2>&1
echo "scaling rc=$?"; cat "$out/scaling.md" 2>/dev/null
timeout 300 python3 -m pytest -q -p no:cacheprovider -x 2>&1 | tee "$out/pytest.log" | tail -15
