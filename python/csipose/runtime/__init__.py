"""The runtime of csipose's Rust kernels: the thread pool they run on and the
instruction set they were dispatched to.

Kernels release the GIL, so Python threads can run them concurrently. On a
small machine, share the cores with torch: ``torch.set_num_threads(a)`` and
``csipose.set_num_threads(b)`` with ``a + b`` about the number of cores.
"""

import operator

from csipose import _native


def set_num_threads(n: int) -> None:
    """Use ``n`` threads in csipose's kernels (0 = one per CPU, or ``RAYON_NUM_THREADS``)."""
    n = operator.index(n)
    if n < 0:
        raise ValueError(f"number of threads must be >= 0, got {n}")
    _native.set_num_threads(n)


def get_num_threads() -> int:
    """The number of threads csipose's kernels use."""
    return _native.get_num_threads()


def simd_level() -> str:
    """The instruction set the kernels run with on this CPU: ``"avx512"``, ``"avx2"`` or ``"base"``.

    The environment variable ``CSIPOSE_SIMD`` (``base``, ``avx2``) caps it; results
    are identical across levels except OKS, whose exp differs by < 1e-15.
    """
    return _native.simd_level()
