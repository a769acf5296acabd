"""OpenSim `.trc` marker files as Pose2Sim writes them (Pose2Sim `Pose2Sim/triangulation.py` make_trc).

    PathFileType<TAB>4<TAB>(X/Y/Z)<TAB><file name>
    DataRate CameraRate NumFrames NumMarkers Units OrigDataRate OrigDataStartFrame OrigNumFrames
    <the values of that row>
    Frame#<TAB>Time<TAB><marker 1><TAB><TAB><TAB><marker 2>...<TAB><TAB><TAB>
    <TAB><TAB>X1<TAB>Y1<TAB>Z1<TAB>X2...<TAB>
    <frame><TAB><time><TAB><x1><TAB><y1><TAB><z1>...   (one row per frame; a missing marker is empty)

Rows are tab-separated; Pose2Sim numbers frames from its first frame (often 0) with time = frame /
rate, writes Units "m" and turns its Z-up world into OpenSim's Y-up (X, Y, Z) <- (Y, Z, X) first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgecap import EdgecapError
from edgecap.core.io import atomic_path

_UNIT_TO_MM = {"mm": 1.0, "cm": 10.0, "m": 1000.0}
_HEADER_KEYS = ("DataRate", "CameraRate", "NumFrames", "NumMarkers", "Units", "OrigDataRate",
                "OrigDataStartFrame", "OrigNumFrames")


def _num(x: float, whole_as_int: bool = False) -> str:
    """A number as Pandas' to_csv writes it (repr; NaN -> empty); rates written as integers when whole."""
    x = float(x)
    if np.isnan(x):
        return ""
    return str(int(x)) if whole_as_int and x.is_integer() else repr(x)


def write_trc(path, points_mm: np.ndarray, markers: Sequence[str], rate: float, *, units: str = "m",
              first_frame: int = 0, zup_to_yup: bool = False) -> Path:
    """Write (frames, markers, 3) millimetre positions (NaN = missing) as a .trc in `units`,
    atomically. `zup_to_yup` applies Pose2Sim's Z-up -> Y-up swap; Time = frame / rate."""
    path = Path(path)
    pts = np.asarray(points_mm, dtype=np.float64)
    if pts.ndim != 3 or pts.shape[2] != 3 or pts.shape[1] != len(markers) or not len(pts):
        raise EdgecapError(f"trc {path}: points must be (frames >= 1, {len(markers)} markers, 3), got {pts.shape}")
    if units not in _UNIT_TO_MM:
        raise EdgecapError(f"trc {path}: units must be one of {sorted(_UNIT_TO_MM)}, got {units!r}")
    if not rate > 0:
        raise EdgecapError(f"trc {path}: rate must be > 0, got {rate!r}")
    if any(not m or any(c in m for c in "\t\r\n") for m in markers):
        raise EdgecapError(f"trc {path}: marker names must be non-empty without tabs or newlines: {list(markers)}")
    if np.isinf(pts).any():
        raise EdgecapError(f"trc {path}: points contain inf")
    pts = pts / _UNIT_TO_MM[units]
    if zup_to_yup:
        pts = pts[..., [1, 2, 0]]
    n, m = pts.shape[:2]
    lines = [
        f"PathFileType\t4\t(X/Y/Z)\t{path.name}",
        "\t".join(_HEADER_KEYS),
        "\t".join(map(str, (_num(rate, True), _num(rate, True), n, m, units, _num(rate, True), first_frame, n))),
        "Frame#\tTime\t" + "\t\t\t".join(markers) + "\t\t\t",
        "\t\t" + "\t".join(f"X{i + 1}\tY{i + 1}\tZ{i + 1}" for i in range(m)) + "\t",
    ]
    for f in range(n):
        frame = first_frame + f
        lines.append("\t".join([str(frame), _num(frame / rate)] + [_num(v) for v in pts[f].ravel()]))
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    return path


@dataclass(frozen=True, eq=False)
class Trc:
    markers: tuple[str, ...]
    points_mm: np.ndarray  # (frames, markers, 3), NaN where missing
    frames: np.ndarray  # (frames,) int
    times: np.ndarray  # (frames,) seconds
    rate: float
    units: str  # the file's unit (points_mm is converted)


def read_trc(path) -> Trc:
    """Read a .trc written by `write_trc`, Pose2Sim or OpenSim (coordinates as stored, in mm)."""
    path = Path(path)
    if not path.is_file():
        raise EdgecapError(f"trc file {path} not found")
    lines = path.read_text().splitlines()
    if len(lines) < 5 or not lines[0].startswith("PathFileType"):
        raise EdgecapError(f"trc file {path}: not a .trc (first line must start with PathFileType)")
    keys, values = lines[1].split("\t"), lines[2].split("\t")
    header = dict(zip(keys, values))
    missing = [k for k in ("DataRate", "NumFrames", "NumMarkers", "Units") if k not in header]
    if missing:
        raise EdgecapError(f"trc file {path}: header line 2 lacks {missing}")
    try:
        rate, n, m = float(header["DataRate"]), int(header["NumFrames"]), int(header["NumMarkers"])
    except ValueError:
        raise EdgecapError(f"trc file {path}: DataRate/NumFrames/NumMarkers are not numbers: {values}") from None
    units = header["Units"].strip()
    if units not in _UNIT_TO_MM:
        raise EdgecapError(f"trc file {path}: Units {units!r} is not one of {sorted(_UNIT_TO_MM)}")
    markers = tuple(name for name in lines[3].split("\t")[2:] if name.strip())
    if len(markers) != m:
        raise EdgecapError(f"trc file {path}: NumMarkers is {m} but line 4 names {len(markers)} markers")
    rows = [line for line in lines[5:] if line.strip()]
    if len(rows) != n:
        raise EdgecapError(f"trc file {path}: NumFrames is {n} but the file has {len(rows)} data rows")
    data = np.full((n, 2 + 3 * m), np.nan)
    for r, line in enumerate(rows):
        cells = line.split("\t")
        if len(cells) > 2 + 3 * m:
            raise EdgecapError(f"trc file {path}: data row {r + 1} has {len(cells)} columns, expected {2 + 3 * m}")
        try:
            data[r, : len(cells)] = [float(c) if c.strip() else np.nan for c in cells]
        except ValueError:
            raise EdgecapError(f"trc file {path}: data row {r + 1} holds a non-number: {line[:80]!r}") from None
    return Trc(markers, data[:, 2:].reshape(n, m, 3) * _UNIT_TO_MM[units], data[:, 0].astype(int), data[:, 1],
               rate, units)
