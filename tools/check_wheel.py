#!/usr/bin/env python3
"""Check an *installed* fastsoftmax: a wheel, or an sdist built by pip.

Run it with the interpreter of the environment that has fastsoftmax installed,
from a directory that is not this checkout (so that ``import fastsoftmax``
finds the installed package, not the source tree):

    cd /tmp && python /path/to/repo/tools/check_wheel.py [options]

Needs only NumPy and the installed fastsoftmax (no pytest, no test extras).
It checks that:

* fastsoftmax is imported from site-packages, not from this repository;
* for every instruction set the build and CPU have (``_core.available_isas()``),
  softmax, log_softmax, logsumexp and cross_entropy (loss and gradient) agree
  with ``fastsoftmax.reference`` on a few shapes -- among them a 1 x 128256 row
  (one row split between threads) and a 64 x 1000 batch -- in float32 and
  float64, to the tolerances the test suite holds them to (``fastsoftmax._testing``,
  the same checks);
* two threads give bitwise the same results as one;
* OpenMP is enabled (or, with ``--expect-no-openmp``, disabled);
* with ``--expect-bundled-openmp`` (Linux, a wheel repaired by auditwheel):
  the libgomp the process has loaded is the copy in ``fastsoftmax.libs/``,
  not the system's.

Exit status 0 and a final line starting with "check_wheel: OK" when all hold.
"""
import argparse
import os
import sys
from pathlib import Path

import numpy as np

# (shape, axis): small rows, a batch of rows, one long row (a vocabulary the
# size of Llama 3's, split between threads), and a middle axis (the panel path).
CASES = [((7, 33), -1), ((64, 1000), -1), ((1, 128256), -1), ((3, 17, 5), 1)]
DTYPES = [np.float32, np.float64]


class CheckFailed(AssertionError):
    pass


def check(condition, message):
    if not condition:
        raise CheckFailed(message)


def bitwise_equal(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def check_case(fs, testing, x, axis, target, n_threads, what):
    """Every function on x against the reference, to the tolerances of the test suite
    (``fastsoftmax._testing``); returns the results for the thread check."""
    dtype = x.dtype
    results = {}
    try:
        results["softmax"] = p = fs.softmax(x, axis, n_threads=n_threads)
        check(p.dtype == dtype, f"{what} softmax: dtype {p.dtype}")
        testing.check_softmax(p, x, axis)
        results["log_softmax"] = lp = fs.log_softmax(x, axis, n_threads=n_threads)
        testing.check_log_softmax(lp, x, axis)
        results["logsumexp"] = lse = fs.logsumexp(x, axis, n_threads=n_threads)
        testing.check_logsumexp(lse, x, axis)
        # cross_entropy with class-index targets (some ignored), loss and gradient.
        for reduction in ("mean", "none"):
            loss, grad = fs.cross_entropy(x, target, axis=axis, reduction=reduction,
                                          return_grad=True, n_threads=n_threads)
            check(np.asarray(loss).dtype == dtype and grad.dtype == dtype,
                  f"{what} cross_entropy({reduction}): dtypes {np.asarray(loss).dtype}, "
                  f"{grad.dtype}")
            testing.check_cross_entropy(loss, grad, x, target, axis, reduction=reduction)
            results[f"cross_entropy_{reduction}_loss"] = loss
            results[f"cross_entropy_{reduction}_grad"] = grad
    except CheckFailed:
        raise
    except AssertionError as exc:
        raise CheckFailed(f"{what} {exc}") from None
    return results


def check_kernels(fs, core, testing, openmp):
    """All ISAs x cases x dtypes; returns the number of comparisons made."""
    rng = np.random.default_rng(20240601)
    previous = core.isa()
    n_checks = 0
    try:
        for isa in core.available_isas():
            check(core.set_isa(isa), f"set_isa({isa!r}) returned False")
            check(core.isa() == isa, f"set_isa({isa!r}) left isa() = {core.isa()!r}")
            for shape, axis in CASES:
                for dtype in DTYPES:
                    x = (rng.standard_normal(shape) * 3.0).astype(dtype)
                    n_classes = shape[axis]
                    target = rng.integers(0, n_classes, size=np.delete(shape, axis % len(shape)))
                    target.flat[1::4] = -100  # some ignored samples (never all of them)
                    what = f"[{isa} {np.dtype(dtype).name} {shape} axis={axis}]"
                    one = check_case(fs, testing, x, axis, target, 1, what)
                    two = check_case(fs, testing, x, axis, target, 2, what + " 2 threads")
                    n_checks += 2 * len(one)
                    for name in one:
                        check(bitwise_equal(one[name], two[name]),
                              f"{what} {name}: n_threads=2 differs from n_threads=1"
                              + ("" if openmp else " (and this build has no OpenMP!)"))
            print(f"check_wheel: {isa}: {len(CASES) * len(DTYPES)} shape/dtype cases agree "
                  f"with fastsoftmax.reference; 2 threads bitwise equal to 1")
    finally:
        core.set_isa(previous)
    check(core.isa() == previous, f"could not restore the ISA {previous!r}")
    return n_checks


def loaded_libgomp():
    """Paths of every libgomp mapped into this process (Linux)."""
    with open("/proc/self/maps") as f:
        paths = {line.split(None, 5)[5].strip() for line in f if len(line.split(None, 5)) == 6}
    return sorted(p for p in paths if "libgomp" in os.path.basename(p))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--expect-no-openmp", action="store_true",
                        help="the build must be single-threaded (no OpenMP)")
    parser.add_argument("--expect-bundled-openmp", action="store_true",
                        help="Linux: the loaded libgomp must be the one auditwheel bundled "
                             "in fastsoftmax.libs/")
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # in order with the failure on stderr
    if args.expect_no_openmp and args.expect_bundled_openmp:
        parser.error("--expect-no-openmp and --expect-bundled-openmp contradict each other")

    import fastsoftmax as fs
    from fastsoftmax import _core, _testing

    # 1. Imported from site-packages, not from a source tree.
    package_dir = Path(fs.__file__).resolve().parent
    repo = Path(__file__).resolve().parent.parent
    if (repo / "setup.py").is_file() and (repo / "fastsoftmax").is_dir():
        check(repo != package_dir and repo not in package_dir.parents,
              f"fastsoftmax was imported from the source tree ({package_dir}), not the installed "
              f"package: run this script from a directory outside {repo}")
    check(any(part in ("site-packages", "dist-packages") for part in package_dir.parts),
          f"fastsoftmax was imported from {package_dir}, which is not in site-packages")
    print(f"check_wheel: fastsoftmax {fs.__version__} from {package_dir}")
    print(f"check_wheel: numpy {np.__version__}, Python {sys.version.split()[0]} on {sys.platform}")
    fs.show_config()

    # 2. OpenMP as expected.
    openmp = _core.openmp_enabled()
    print(f"check_wheel: OpenMP {'enabled' if openmp else 'DISABLED'} in this build "
          f"(max threads {_core.max_threads()})")
    if args.expect_no_openmp:
        check(not openmp, "expected a build without OpenMP, but openmp_enabled() is True")
    else:
        check(openmp, "this build has no OpenMP (openmp_enabled() is False); pass "
                      "--expect-no-openmp if that is intended")

    # 3. Every kernel against the reference, one and two threads.
    n_checks = check_kernels(fs, _core, _testing, openmp)

    # 4. Which OpenMP runtime the process loaded (after threaded calls above).
    gomp_note = ""
    if args.expect_bundled_openmp:
        check(sys.platform.startswith("linux"),
              "--expect-bundled-openmp is checked through /proc/self/maps: Linux only")
        libs_dir = package_dir.parent / "fastsoftmax.libs"
        check(libs_dir.is_dir(), f"no {libs_dir}: the wheel was not repaired by auditwheel")
        libgomp = loaded_libgomp()
        print(f"check_wheel: libgomp mapped: {libgomp}")
        check(libgomp, "no libgomp is mapped into the process, though OpenMP is enabled")
        foreign = [p for p in libgomp if Path(p).resolve().parent != libs_dir.resolve()]
        check(not foreign, f"libgomp loaded from outside {libs_dir}: {foreign}")
        gomp_note = f"; bundled {Path(libgomp[0]).name} loaded"
    elif args.expect_no_openmp and sys.platform.startswith("linux"):
        libgomp = loaded_libgomp()
        check(not libgomp, f"a build without OpenMP, yet libgomp is loaded: {libgomp}")
        gomp_note = "; no libgomp loaded"

    print(f"check_wheel: OK: fastsoftmax {fs.__version__} ({package_dir}), "
          f"ISAs {' '.join(_core.available_isas())}, "
          f"OpenMP {'enabled' if openmp else 'disabled'}{gomp_note}, {n_checks} comparisons passed")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except CheckFailed as exc:
        print(f"check_wheel: FAILED: {exc}", file=sys.stderr)
        sys.exit(1)
