"""Give the C heap's freed memory back to the system between the steps of a fit."""
import ctypes
import sys


def _load_malloc_trim():
    if not sys.platform.startswith("linux"):
        return None
    try:
        trim = ctypes.CDLL(None).malloc_trim  # glibc only; musl and others lack it
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


_MALLOC_TRIM = _load_malloc_trim()


def release_freed_memory():
    """Return the free pages of the C heap to the system (glibc's ``malloc_trim``).

    glibc keeps large freed blocks inside its heap when they were not mapped on their own, and
    a later, larger allocation cannot reuse them: the process then holds both.  Where there
    is no ``malloc_trim`` this does nothing.

    Returns
    -------
    bool
        Whether memory was handed back.
    """
    if _MALLOC_TRIM is None:
        return False
    return bool(_MALLOC_TRIM(0))
