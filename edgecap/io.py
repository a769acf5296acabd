"""Atomic file writes and safe reads: an artifact either exists whole or not at all."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

from edgecap import EdgecapError


@contextmanager
def atomic_path(final: Path, suffix: str = ""):
    """Yield a temp path beside `final`; on success rename it over `final` (file or dir)."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".tmp-{final.name}-", suffix=suffix or final.suffix, dir=final.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    tmp.unlink()  # the writer creates it (some writers insist on creating a directory)
    try:
        yield tmp
        if not tmp.exists():
            raise EdgecapError(f"writer produced nothing at {tmp} for {final}")
        if final.is_dir() and not final.is_symlink():
            shutil.rmtree(final)
        os.replace(tmp, final)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()


def write_json(path: Path, obj) -> None:
    with atomic_path(Path(path)) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n")


def write_text(path: Path, text: str) -> None:
    with atomic_path(Path(path)) as tmp:
        tmp.write_text(text)


def read_json(path: Path, what: str = "file") -> dict:
    path = Path(path)
    if not path.exists():
        raise EdgecapError(f"{what} not found: {path}")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise EdgecapError(f"{what} {path} is corrupt (not valid JSON): {e}") from None
