"""Image bytes stored content-addressed by sha256: atomic writes, shared across users.

Layout: ``<root>/ab/cd/abcdef...`` plus ``<root>/tmp`` for writes in flight. A write goes to a
temp file, is fsynced, then renamed into place (and the folder fsynced), so a reader never sees
half a file. Writers hold a shared lock on ``<root>/.lock`` from writing a file until the row
that references it is committed; deleting unreferenced files takes the exclusive lock, so a
sweep never removes a file whose row is about to be committed by a live process. A killed
process drops its lock with it.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from store.files import atomic_write

try:
    import fcntl
except ImportError:  # pragma: no cover - not on Linux/macOS: no inter-process locking
    fcntl = None  # type: ignore[assignment]

logger = logging.getLogger(__name__)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class BlobStore:
    """Content-addressed image files under one folder."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.tmp = self.root / "tmp"
        self.tmp.mkdir(parents=True, exist_ok=True)
        self._lock_path = self.root / ".lock"
        self._lock_path.touch(exist_ok=True)

    def path(self, sha256: str) -> Path:
        """Where the file of this hash lives (it may not exist)."""
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise ValueError(f"not a sha256 hex digest: {sha256!r}")
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def exists(self, sha256: str) -> bool:
        return self.path(sha256).is_file()

    def get(self, sha256: str) -> bytes | None:
        """The bytes of an image, or None when absent."""
        try:
            return self.read(sha256)
        except FileNotFoundError:
            return None

    def read(self, sha256: str) -> bytes:
        """The bytes of an image; FileNotFoundError when absent."""
        return self.path(sha256).read_bytes()

    def put(self, data: bytes) -> str:
        """Write the bytes (no-op when already there) and return their sha256.

        Call it while holding ``writing()`` until the referencing row is committed.
        """
        sha = sha256_hex(data)
        final = self.path(sha)
        if final.is_file() and final.stat().st_size == len(data):
            return sha
        final.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(final, data, self.tmp)
        return sha

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        """Shared lock: files written inside are safe from sweeps until this exits."""
        with self._locked(shared=True):
            yield

    @contextlib.contextmanager
    def deleting(self) -> Iterator[None]:
        """Exclusive lock: no write is between its file and its commit while held."""
        with self._locked(shared=False):
            yield

    def delete_unreferenced(
        self, candidates: Iterable[str], referenced: Callable[[list[str]], set[str]]
    ) -> int:
        """Delete the candidates' files that ``referenced`` says no row uses; hold ``deleting``."""
        shas = sorted(set(candidates))
        keep = referenced(shas) if shas else set()
        removed = 0
        for sha in shas:
            if sha not in keep and self._unlink(self.path(sha)):
                removed += 1
        return removed

    def all_shas(self) -> Iterator[str]:
        """Every stored hash (walks the folder)."""
        for first in self.root.iterdir():
            if len(first.name) != 2 or not first.is_dir():
                continue
            for second in first.iterdir():
                for file in second.iterdir():
                    if len(file.name) == 64:
                        yield file.name

    def sweep(self, referenced: Callable[[list[str]], set[str]], batch: int = 2000) -> int:
        """Remove files no row references and temp files of dead writers; returns the count."""
        with self.deleting():
            removed = sum(self._unlink(p) for p in list(self.tmp.iterdir()))
            pending: list[str] = []
            for sha in self.all_shas():
                pending.append(sha)
                if len(pending) >= batch:
                    removed += self.delete_unreferenced(pending, referenced)
                    pending = []
            removed += self.delete_unreferenced(pending, referenced)
        if removed:
            logger.info("removed %d unreferenced image file(s) from %s", removed, self.root)
        return removed

    @contextlib.contextmanager
    def _locked(self, shared: bool) -> Iterator[None]:
        if fcntl is None:
            yield
            return
        with open(self._lock_path, "rb") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    @staticmethod
    def _unlink(path: Path) -> bool:
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        return True
