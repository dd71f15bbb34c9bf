"""The glibc arena cap, one of what keeps peak RSS flat (benchmarks/bench_memory.py measures
the default command; RESULTS.md: "Memory of the default command")."""

from __future__ import annotations

import platform

import pytest

from wsi_ihc.infer.allocator import limit_malloc_arenas


def test_arenas_are_capped_on_glibc_unless_the_user_set_a_cap(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    limit_malloc_arenas.cache_clear()
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert limit_malloc_arenas() is False  # the user's setting stands
    limit_malloc_arenas.cache_clear()
    monkeypatch.delenv("MALLOC_ARENA_MAX")
    assert limit_malloc_arenas() is (platform.libc_ver()[0] == "glibc")
