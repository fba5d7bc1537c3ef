"""Memory-bandwidth probe, measured in the same run as the kernels it is the floor for.

A parallel copy and a parallel read over 256 MiB, far beyond any cache. NumPy releases the GIL in
np.copyto and np.max, so a thread pool with one worker per CPU over contiguous slices drives all
cores the way an OpenMP kernel does. The read is np.max, whose SIMD loop keeps up with memory
(np.sum's pairwise loop does not: on a 2-core Xeon it read 14 GB/s where np.max and a hand-written
AVX-512 loop read 22). benchmarks/report.py bounds each kernel's time below by both: its bytes
read over the read probe's rate, and all its bytes over the better rate of the two (copy counts
read + written bytes). A machine may copy faster, per byte moved, than it reads alone.
"""

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

PROBE_BYTES = 256 * 2**20


class Probe:
    def __init__(self, n_workers):
        n = PROBE_BYTES // np.dtype(np.float64).itemsize
        # Both filled (not np.zeros/np.empty): their pages are faulted in now, not while timed.
        self.src = np.full(n, 1.0)
        self.dst = np.full(n, 0.0)
        bounds = np.linspace(0, n, n_workers + 1).astype(int)
        self.slices = [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:])]
        self.pool = ThreadPoolExecutor(max_workers=n_workers)

    def copy(self):
        list(self.pool.map(lambda s: np.copyto(self.dst[s], self.src[s]), self.slices))

    def read(self):
        return max(self.pool.map(lambda s: np.max(self.src[s]), self.slices))


@pytest.fixture(scope="module")
def probe():
    p = Probe(os.cpu_count() or 1)
    yield p
    p.pool.shutdown()


# op -> (bytes read, bytes written)
PROBES = {
    "copy": (PROBE_BYTES, PROBE_BYTES),
    "read": (PROBE_BYTES, 0),
}


@pytest.mark.parametrize("op", PROBES)
def test_bandwidth(benchmark, measure, probe, op):
    benchmark.group = "bandwidth"
    bytes_read, bytes_written = PROBES[op]
    benchmark.extra_info.update(
        implementation="numpy_threads",
        op=op,
        bytes_read=bytes_read,
        bytes_written=bytes_written,
        threads=os.cpu_count(),
    )
    result = measure(getattr(probe, op))
    if op == "copy":
        assert probe.dst[-1] == probe.src[-1]
    else:
        assert result == 1.0
