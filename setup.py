"""Build the fastsoftmax extension: Cython loops over the C kernels in src/.

OpenMP is probed per compiler.  Where the compiler has none (Apple clang
without libomp, say), the extension is built single-threaded and a warning
says so; the install never fails for that reason.  Set FASTSOFTMAX_NO_OPENMP=1
to build without OpenMP on purpose.  FASTSOFTMAX_KEEP_OBJECTS=DIR copies the
extension's object files into DIR (tools/emulated_isas.sh links its test harness
and its build of the AVX-512 template for AVX2 from them: CI compiles the x86
kernels once).

Flags are portable (src/cflags.txt, which says why each): -O3, -fno-math-errno
and FMA contraction.  No tuning for the build machine's own CPU (the wheel must
run on any x86-64; the kernels pick AVX-512 / AVX2 / SSE2 at run time) and no
fast-math mode (it would break inf/NaN semantics).
"""
import glob
import os
import shlex
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

# Every C file in src/: the kernels of each ISA (fs_isa_*.c), their dispatch, and the executor
# (fs_pool.c).  The scripts that build the kernels without setup.py (tools/isa_check.sh,
# tools/emulated_isas.sh, tools/arm64_suite.sh) take the same glob, so a new file needs no list.
KERNEL_SOURCES = sorted(glob.glob("src/*.c"))


def _portable_cflags():
    """src/cflags.txt's flags, which the tools that compile src/ themselves take too."""
    with open(os.path.join("src", "cflags.txt")) as f:
        return shlex.split(f.read(), comments=True)


def _compiler_accepts(compiler, compile_flags, link_flags, source):
    """Whether `compiler` compiles and links `source` with these flags."""
    tmp = tempfile.mkdtemp(prefix="fastsoftmax-probe-")
    try:
        path = os.path.join(tmp, "probe.c")
        with open(path, "w") as f:
            f.write(source)
        objects = compiler.compile([path], output_dir=tmp, extra_postargs=compile_flags)
        if compiler.compiler_type != "msvc":
            # distutils links executables with bare CC, but the extension with
            # LDSHARED + LDFLAGS: give the probe LDFLAGS too, or a library found
            # only through them (macOS: -L$(brew --prefix libomp)/lib) fails here.
            link_flags = shlex.split(os.environ.get("LDFLAGS", "")) + link_flags
        compiler.link_executable(objects, "probe", output_dir=tmp, extra_postargs=link_flags)
        return True
    except Exception:  # any compile or link error means "no"
        return False
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


OPENMP_PROBE = """
#include <omp.h>
int main(void) {
    int n = 0;
    #pragma omp parallel reduction(+:n)
    n += 1;
    return n > 0 ? 0 : 1;
}
"""


def _openmp_flags(compiler):
    """(compile flags, link flags) that give OpenMP, or None."""
    if os.environ.get("FASTSOFTMAX_NO_OPENMP"):
        return None
    if compiler.compiler_type == "msvc":
        candidates = [(["/openmp"], [])]
    elif sys.platform == "darwin":
        candidates = [(["-Xpreprocessor", "-fopenmp"], ["-lomp"]), (["-fopenmp"], ["-fopenmp"])]
    else:
        candidates = [(["-fopenmp"], ["-fopenmp"])]
    for compile_flags, link_flags in candidates:
        if _compiler_accepts(compiler, compile_flags, link_flags, OPENMP_PROBE):
            return compile_flags, link_flags
    return None


def _compile_in_parallel(compiler):
    """Make `compiler` compile one extension's sources concurrently.

    setuptools parallelises across extensions only, and fastsoftmax is one
    extension whose five kernel files (each ISA's template copies) take
    minutes one after another.  Each object is still compiled by the same
    ``_compile`` call with the same arguments, so the objects are identical.
    MSVC's compile() has no per-object ``_compile``: it is left serial.
    """
    jobs = int(os.environ.get("FASTSOFTMAX_BUILD_JOBS", os.cpu_count() or 1))
    if compiler.compiler_type == "msvc" or jobs <= 1:
        return

    def compile(sources, output_dir=None, macros=None, include_dirs=None, debug=0,
                extra_preargs=None, extra_postargs=None, depends=None):
        macros, objects, extra_postargs, pp_opts, build = compiler._setup_compile(
            output_dir, macros, include_dirs, sources, depends, extra_postargs)
        cc_args = compiler._get_cc_args(pp_opts, debug, extra_preargs)

        def compile_one(obj):
            if obj in build:  # absent: up to date (distutils' dependency check)
                source, ext = build[obj]
                compiler._compile(obj, source, ext, cc_args, extra_postargs, pp_opts)

        with ThreadPoolExecutor(jobs) as pool:
            list(pool.map(compile_one, objects))  # list(): re-raise the first error
        return objects

    compiler.compile = compile


class BuildExt(build_ext):
    def build_extensions(self):
        compiler = self.compiler
        _compile_in_parallel(compiler)
        if compiler.compiler_type == "msvc":
            opt = ["/O2", "/fp:precise"]
        else:
            # -g0 overrides the -g in Python's own CFLAGS: no debug info, as in the release
            # builds of meson-python (NumPy, SciPy).  The kernel templates' debug info took
            # a third of the build's time, and wheels strip it anyway; -g never changes the
            # code.  FASTSOFTMAX_EXTRA_CFLAGS=-g, which comes after, brings it back.
            opt = _portable_cflags() + ["-g0"]
        openmp = _openmp_flags(compiler)
        if openmp is None:
            warnings.warn(
                "fastsoftmax: the C compiler has no OpenMP; building single-threaded. "
                "Results are the same, only slower on several cores.",
                stacklevel=1,
            )
            print("WARNING: fastsoftmax is being built WITHOUT OpenMP (single-threaded).",
                  file=sys.stderr)
            compile_flags, link_flags = [], []
        else:
            compile_flags, link_flags = openmp
        if compiler.compiler_type != "msvc" and sys.platform != "darwin":
            # The executor (src/fs_pool.c) runs on POSIX threads, with or without OpenMP
            # (glibc before 2.34 keeps them in libpthread).
            compile_flags, link_flags = compile_flags + ["-pthread"], link_flags + ["-pthread"]
        for ext in self.extensions:
            ext.extra_compile_args = opt + compile_flags + ext.extra_compile_args
            ext.extra_link_args = link_flags + ext.extra_link_args
        keep = os.environ.get("FASTSOFTMAX_KEEP_OBJECTS")
        if keep:
            self.force = True  # an up-to-date extension would compile no objects to keep
        super().build_extensions()
        if keep:
            for ext in self.extensions:
                _keep_objects(compiler, ext.sources, self.build_temp, keep)


def _keep_objects(compiler, sources, build_temp, directory):
    """Copy the object of each of `sources` into `directory`, as <name>.o (the Cython
    module's too: _core.o, which a link of the extension with other kernels needs)."""
    os.makedirs(directory, exist_ok=True)
    objects = compiler.object_filenames(sources, output_dir=build_temp)
    for source, obj in zip(sources, objects):
        name = os.path.splitext(os.path.basename(source))[0] + ".o"
        shutil.copyfile(obj, os.path.join(directory, name))


extensions = [
    Extension(
        "fastsoftmax._core",
        sources=["fastsoftmax/_core.pyx"] + KERNEL_SOURCES,
        include_dirs=[np.get_include(), "src"],
        depends=sorted(glob.glob("src/*.h")),  # a header edit rebuilds the extension
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_2_0_API_VERSION")],
        # Split as a shell would: "-DA=1 -DB='x y'" is two flags, not one.
        extra_compile_args=shlex.split(os.environ.get("FASTSOFTMAX_EXTRA_CFLAGS", "")),
    )
]

setup(
    ext_modules=cythonize(extensions, compiler_directives={"language_level": 3}),
    cmdclass={"build_ext": BuildExt},
    # MANIFEST.in puts the .pyx in the sdist; the wheel needs only the compiled module.
    exclude_package_data={"fastsoftmax": ["*.pyx"]},
)
