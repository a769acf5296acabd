"""Atomic file writes, safe reads and content hashes: an artifact either exists whole or not at all."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
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


def sha256_of(path: Path) -> str:
    """sha256 of a file, or of a directory's files in sorted order (.mlpackage, multi-part artifacts)."""
    path = Path(path)
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for p in files:
        if path.is_dir():
            h.update(str(p.relative_to(path)).encode())
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def size_of(path: Path) -> int:
    path = Path(path)
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else path.stat().st_size


# Array-only pickles: numpy's reconstruction helpers (under numpy 1.x `numpy.core` and 2.x
# `numpy._core` names) and `_codecs.encode`, which protocol-2 pickles use for raw bytes.
# Anything else (os.system, eval, ...) is refused.
_PICKLE_ALLOWED = {
    ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
    *((f"numpy.{core}.{mod}", name) for core in ("core", "_core")
      for mod, name in (("multiarray", "_reconstruct"), ("multiarray", "scalar"), ("numeric", "_frombuffer"))),
}


class ArrayOnlyUnpickler(pickle.Unpickler):
    """Unpickles numpy arrays, dicts and lists only: a pickle from a dataset cannot run code."""

    def find_class(self, module: str, name: str):
        if (module, name) not in _PICKLE_ALLOWED:
            raise pickle.UnpicklingError(
                f"refusing to load {module}.{name}: only numpy arrays, dicts and lists are allowed"
            )
        return super().find_class(module, name)


_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGIC = b"PK\x03\x04"
_KNOWN_MAGIC = {b"\x89PNG": "a PNG image", b"\xff\xd8\xff": "a JPEG image", b"{": "JSON text",
                b"TFL3": "a TFLite model"}


def _what_it_is(head: bytes) -> str:
    for magic, name in _KNOWN_MAGIC.items():
        if head.startswith(magic) or head[4:8] == magic:
            return f" (it looks like {name})"
    return ""


def _read_numpy(path: Path, what: str, magic: bytes, expected: str, parse):
    """`parse(path)` of a numpy file, after checking it is there, not empty and of the right kind;
    every failure is one line that names the file."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            head = f.read(8)
        if not head:
            raise EdgecapError(f"{what} {path} is empty")
        if not head.startswith(magic):
            raise EdgecapError(f"{what} {path} is not {expected}{_what_it_is(head)}")
        return parse(path)
    except FileNotFoundError:
        raise EdgecapError(f"{what} not found: {path}") from None
    except IsADirectoryError:
        raise EdgecapError(f"{what} {path} is a directory, not {expected}") from None
    except EdgecapError:
        raise
    # numpy parses a .npy header with ast.literal_eval: a corrupt one raises SyntaxError, TokenError,
    # MemoryError (a huge declared shape), ... All of them mean the file is not usable.
    except Exception as e:  # noqa: BLE001
        raise EdgecapError(f"{what} {path} is truncated or not {expected} of plain numeric data: "
                           f"{type(e).__name__}: {e}") from None


def load_array(path: Path, what: str = "input file"):
    """One array from a .npy file, with a one-line error for anything else: missing, empty,
    truncated, pickled objects, another kind of file. Never unpickles."""
    import numpy as np

    return _read_numpy(path, what, _NPY_MAGIC, "a .npy array file", lambda p: np.load(p, allow_pickle=False))


def load_arrays(path: Path, what: str = "input file") -> dict:
    """The named arrays of an .npz file, with the same one-line errors as `load_array`."""
    import numpy as np

    def parse(p: Path) -> dict:
        with np.load(p, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}

    return _read_numpy(path, what, _ZIP_MAGIC, "an .npz archive of named arrays", parse)
