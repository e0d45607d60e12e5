"""SIGKILL in the middle of a burst of turns: acknowledged turns survive, no orphan file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import select

from store import StoreConfig, open_store
from store.image_refs import referenced_shas
from store.tables import Image

ROOT = Path(__file__).resolve().parents[2]
ACKS_BEFORE_KILL = 150


def test_sigkill_mid_burst_keeps_acknowledged_turns_and_leaves_no_orphans(
    tmp_path: Path, database_url: str
) -> None:
    data = tmp_path / "data"
    open_store(StoreConfig(data_dir=str(data)), database_url).close()  # schema first
    acks = _run_and_kill(data, database_url)
    assert len(acks) >= ACKS_BEFORE_KILL

    store = open_store(StoreConfig(data_dir=str(data)), database_url)
    try:
        for user_id, conv_id, position, sha in acks:
            turn = next(t for t in store.repo.history(user_id, conv_id) if t.position == position)
            assert [p.kind for p in turn.parts] == ["text", "image", "text"]
            assert turn.parts[1].sha256 == sha and store.blobs.exists(sha)
        files = set(store.blobs.all_shas())
        with store.db.read() as s:
            rows = set(s.scalars(select(Image.sha256)))
            used = referenced_shas(s, sorted(rows))
        assert files == rows == used  # every file has a row, every row is used
        assert list(store.blobs.tmp.iterdir()) == []
    finally:
        store.close()


def _run_and_kill(data: Path, url: str) -> list[tuple[int, int, int, str]]:
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.store.crash_writer", str(data), url, "12"],
        cwd=ROOT, stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    acks: list[tuple[int, int, int, str]] = []
    deadline = time.monotonic() + 60
    try:
        assert child.stdout is not None
        for line in child.stdout:
            if line.startswith("ACK "):
                user, conv, pos, sha = line.split()[1:]
                acks.append((int(user), int(conv), int(pos), sha))
            if len(acks) >= ACKS_BEFORE_KILL or time.monotonic() > deadline:
                break
        child.send_signal(signal.SIGKILL)
        for line in child.stdout:  # acks printed before the kill landed
            if line.startswith("ACK "):
                user, conv, pos, sha = line.split()[1:]
                acks.append((int(user), int(conv), int(pos), sha))
    finally:
        child.kill()
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    return acks
