"""Keep glibc from holding freed block arrays per thread.

glibc gives each thread that allocates its own heap (arena, up to 8 per core) and keeps
freed memory there for reuse. Reading threads and peak-picking threads each allocate
arrays of tens of MB per block, so every thread's arena grows to its own high-water mark:
peak RSS then varied by ~300 MiB from run to run (benchmarks/bench_memory.py: 16x the
slide area at 1.20-1.32x the peak RSS of 1x; with two arenas 1.08x, at the same speed).
``MALLOC_ARENA_MAX`` in the environment, set before Python starts, takes precedence.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
import os

log = logging.getLogger(__name__)

M_ARENA_MAX = -8  # from glibc's malloc.h
ARENAS = 2


@functools.cache
def limit_malloc_arenas() -> bool:
    """Cap glibc's arenas (once per process); False where there is no glibc or a user cap."""
    if "MALLOC_ARENA_MAX" in os.environ:
        return False
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        done = bool(libc and hasattr(libc, "mallopt") and libc.mallopt(M_ARENA_MAX, ARENAS))
    except OSError:
        done = False
    log.debug("malloc arenas capped at %d: %s", ARENAS, done)
    return done
