"""Content hashes that name exactly which file a result came from."""

from __future__ import annotations

import hashlib
from pathlib import Path

#: A slide's fingerprint reads this much from each end.
FINGERPRINT_BYTES = 4 << 20


def sha256_of(path: Path) -> str:
    """sha256 of the whole file: models, small enough to hash whole when picked."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def slide_fingerprint(path: Path) -> str:
    """sha256 of the size and the first and last 4 MiB: cheap for multi-GB slides."""
    digest = hashlib.sha256()
    size = path.stat().st_size
    digest.update(str(size).encode())
    with open(path, "rb") as handle:
        digest.update(handle.read(FINGERPRINT_BYTES))
        handle.seek(max(0, size - FINGERPRINT_BYTES))
        digest.update(handle.read(FINGERPRINT_BYTES))
    return f"sha256-head-tail:{digest.hexdigest()[:16]}"
