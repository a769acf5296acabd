"""The small lifter configuration the backend tests and the `small_lifter` fixture share, and the
int8 closeness check every backend's int8 artifact must pass."""

import numpy as np

from edgecap.data.motion import MotionDataConfig
from edgecap.models.lifting.family import LiftingFamily, LiftingRun
from edgecap.models.lifting.model import LiftingConfig

FAM = LiftingFamily()
RUN = LiftingRun(model=LiftingConfig(hidden=64, blocks=1),
                 data=MotionDataConfig(train_sequences=24, val_sequences=4, frames=60, real_sequences=4))


def assert_int8_close(got: np.ndarray, eager: np.ndarray) -> None:
    """Mean per-joint error of int8 outputs under 5% of how much the eager poses vary (mm)."""
    diff = np.linalg.norm(got - eager, axis=-1)
    spread = np.linalg.norm(eager - eager.mean(0), axis=-1).mean()
    assert diff.mean() < 0.05 * spread, f"int8 mean joint error {diff.mean():.2f} mm vs pose spread {spread:.1f} mm"


def request(model, windows, precision: str, calibration=(), **overrides):
    """The ExportRequest of the small lifter, as the export stage builds it."""
    from edgecap.backends.base import ExportRequest
    from edgecap.models.lifting.app import INPUT

    fields = dict(model=model, example_inputs={INPUT: windows[:1]}, output_names=FAM.output_names(RUN.model),
                  precision=precision, metadata=FAM.metadata(RUN.model), calibration=list(calibration),
                  float_modules=FAM.float_modules(model.cfg))
    return ExportRequest(**{**fields, **overrides})


def export_both(exporter, model, windows, calibration, folder, suffix: str) -> dict:
    """{precision: (path, record)} of fp32 and int8 artifacts, at temp-style names as the stage uses."""
    out = {}
    for precision in ("fp32", "int8"):
        path = folder / f"lift_{precision}{suffix}.tmp"
        out[precision] = (path, exporter(request(model, windows, precision, calibration), path))
    return out
