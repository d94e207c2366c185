"""Build the mfsgd extensions: cythonize mfsgd/_kernels/_sgd.pyx, _topn.pyx and _svdpp.pyx, with
OpenMP when the compiler has it, and without debug information (stripped on Linux) to keep the wheel small.

Set MFSGD_NO_OPENMP=1 to build without OpenMP (single-threaded training), and MFSGD_DEBUG=1 to
keep the compiler's debug information (Python's own CFLAGS, usually -g) and the symbols.
"""
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

COMPILER_DIRECTIVES = {
    "language_level": 3,
    "boundscheck": False,
    "wraparound": False,
    "cdivision": True,
    "initializedcheck": False,
}


def compiler_has_openmp(compiler):
    """Return True when `compiler` compiles and links a program with -fopenmp."""
    if os.environ.get("MFSGD_NO_OPENMP"):
        return False
    tmp = tempfile.mkdtemp()
    try:
        src = os.path.join(tmp, "check.c")
        with open(src, "w") as f:
            f.write("#include <omp.h>\nint main(void) { return omp_get_max_threads() < 0; }\n")
        cmd = [compiler, "-fopenmp", src, "-o", os.path.join(tmp, "check")]
        return subprocess.run(cmd, capture_output=True).returncode == 0
    except OSError:
        return False
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


class BuildExt(build_ext):
    """build_ext that adds OpenMP flags when the compiler supports them."""

    def build_extensions(self):
        compiler = self.compiler.compiler[0] if hasattr(self.compiler, "compiler") else "cc"
        openmp = sys.platform != "win32" and compiler_has_openmp(compiler)
        for ext in self.extensions:
            if openmp:
                ext.extra_compile_args.append("-fopenmp")
                ext.extra_link_args.append("-fopenmp")
            else:
                ext.extra_compile_args.append("-fopenmp-simd")
        if not openmp:
            print("mfsgd: building without OpenMP; training will use one thread", file=sys.stderr)
        super().build_extensions()


def size_flags():
    """(compile, link) flags that leave out debug information and symbols, unless MFSGD_DEBUG.

    Python's CFLAGS usually hold -g; -g0 after it wins.  -s strips at link time (GNU ld and
    LLVM lld; the macOS linker does not take it).
    """
    if os.environ.get("MFSGD_DEBUG") or sys.platform == "win32":
        return [], []
    return ["-g0"], (["-s"] if sys.platform.startswith("linux") else [])


def kernel_extension(name, depends=()):
    """An extension module mfsgd._kernels.<name> built from mfsgd/_kernels/<name>.pyx with the
    kernel flags."""
    compile_size, link_size = size_flags()
    return Extension(
        f"mfsgd._kernels.{name}",
        sources=[f"mfsgd/_kernels/{name}.pyx"],
        depends=list(depends),
        include_dirs=[np.get_include(), "mfsgd/_kernels"],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        extra_compile_args=["-O3", "-fno-math-errno", "-fno-trapping-math", *compile_size],
        extra_link_args=link_size,
    )


KERNEL_HEADERS = ["mfsgd/_kernels/_kernels.h", "mfsgd/_kernels/_kernels_impl.h"]
extensions = [
    kernel_extension("_sgd", KERNEL_HEADERS),
    # Top-n scoring shares the SGD kernel's dot product, so its scores equal predict's.
    kernel_extension("_topn", KERNEL_HEADERS),
    kernel_extension("_svdpp", KERNEL_HEADERS + ["mfsgd/_kernels/_svdpp.h",
                                                 "mfsgd/_kernels/_svdpp_impl.h"]),
]

setup(
    ext_modules=cythonize(extensions, compiler_directives=COMPILER_DIRECTIVES),
    cmdclass={"build_ext": BuildExt},
)
