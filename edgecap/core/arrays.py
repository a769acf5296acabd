"""Named arrays, the currency between every layer: the tensor spec of a graph's inputs, and the
checks every runner and stage applies to them (names, shapes, dtypes, finiteness)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgecap import EdgecapError

Arrays = dict[str, np.ndarray]


@dataclass(frozen=True)
class TensorSpec:
    shape: tuple[int, ...]
    dtype: str = "float32"

    def to_json(self) -> dict:
        return {"shape": list(self.shape), "dtype": self.dtype}


def check_named_arrays(arrays: dict, shapes: dict[str, tuple], where: str) -> None:
    """`shapes` maps name -> expected shape, None for any size on that axis."""
    missing = set(shapes) - set(arrays)
    if missing:
        raise EdgecapError(f"{where}: missing input(s) {sorted(missing)}; got {sorted(arrays)}")
    for name, expected in shapes.items():
        a = arrays[name]
        if not isinstance(a, np.ndarray):
            raise EdgecapError(f"{where}: input {name!r} must be a numpy array, got {type(a).__name__}")
        ok = a.ndim == len(expected) and all(e is None or e == s for e, s in zip(expected, a.shape))
        if not ok:
            shown = tuple("N" if e is None else e for e in expected)
            raise EdgecapError(f"{where}: input {name!r} has shape {a.shape}, expected {shown}")
        if not np.issubdtype(a.dtype, np.floating):
            raise EdgecapError(f"{where}: input {name!r} has dtype {a.dtype}, expected float32")
        bad = ~np.isfinite(a)
        if bad.any():
            first = tuple(int(i) for i in np.argwhere(bad)[0])
            raise EdgecapError(
                f"{where}: input {name!r} has {int(bad.sum())} NaN/inf value(s), first at index {first}; "
                "replace them before running the model (the model's docs say how to mark a missing value)"
            )
