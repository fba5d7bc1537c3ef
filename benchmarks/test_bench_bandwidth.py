"""Memory-bandwidth probe, measured in the same run as the kernels it is the floor for.

A parallel copy and a parallel sum over 256 MiB, far beyond any cache. NumPy releases the GIL in
np.copyto and np.sum, so a thread pool with one worker per CPU over contiguous slices drives all
cores the way an OpenMP kernel does. benchmarks/report.py takes the better of the two as the
machine's bandwidth (copy counts read + written bytes, sum read bytes).
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

    def sum(self):
        return sum(self.pool.map(lambda s: np.sum(self.src[s]), self.slices))


@pytest.fixture(scope="module")
def probe():
    p = Probe(os.cpu_count() or 1)
    yield p
    p.pool.shutdown()


# op -> (bytes read, bytes written)
PROBES = {
    "copy": (PROBE_BYTES, PROBE_BYTES),
    "sum": (PROBE_BYTES, 0),
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
    measure(getattr(probe, op))
    if op == "copy":
        assert probe.dst[-1] == probe.src[-1]
