"""write_trc in Pose2Sim's make_trc layout, and read_trc round trips it."""

import numpy as np
import pytest

from edgecap import EdgecapError
from edgecap.data.multiview import read_trc, write_trc

MARKERS = ("Hip", "RHip", "RKnee", "Neck")


def points(frames=4):
    """(frames, 4, 3) mm: a person walking along x, Z up; RKnee missing in frame 2."""
    base = np.array([[0.0, 0.0, 950.0], [-90.0, 10.0, 940.0], [-95.0, 30.0, 520.0], [0.0, 20.0, 1480.0]])
    pts = base + np.arange(frames)[:, None, None] * [[[23.7, 0.4, -1.1]]]
    pts[2, 2] = np.nan
    return pts


def test_layout_is_pose2sims(tmp_path):
    path = write_trc(tmp_path / "walk_0-3.trc", points(), MARKERS, rate=30)
    lines = path.read_text().split("\n")
    assert lines[0] == "PathFileType\t4\t(X/Y/Z)\twalk_0-3.trc"
    assert lines[1].split("\t") == ["DataRate", "CameraRate", "NumFrames", "NumMarkers", "Units", "OrigDataRate",
                                    "OrigDataStartFrame", "OrigNumFrames"]
    assert lines[2] == "30\t30\t4\t4\tm\t30\t0\t4"
    assert lines[3] == "Frame#\tTime\tHip\t\t\tRHip\t\t\tRKnee\t\t\tNeck\t\t\t"
    assert lines[4] == "\t\tX1\tY1\tZ1\tX2\tY2\tZ2\tX3\tY3\tZ3\tX4\tY4\tZ4\t"
    assert lines[5].split("\t")[:5] == ["0", "0.0", "0.0", "0.0", "0.95"]
    assert lines[7].split("\t")[:2] == ["2", "0.06666666666666667"] and lines[7].split("\t")[8:11] == ["", "", ""]
    assert lines[-1] == "" and len(lines) == 10


@pytest.mark.parametrize("units", ["m", "mm"])
def test_round_trip(tmp_path, units):
    pts = points()
    trc = read_trc(write_trc(tmp_path / "a.trc", pts, MARKERS, rate=59.94, units=units, first_frame=120))
    assert trc.markers == MARKERS and trc.rate == 59.94 and trc.units == units
    np.testing.assert_array_equal(trc.frames, [120, 121, 122, 123])
    np.testing.assert_allclose(trc.times, np.arange(120, 124) / 59.94)
    np.testing.assert_allclose(trc.points_mm, pts, rtol=1e-12)  # NaN compared equal


def test_zup_to_yup_like_pose2sim(tmp_path):
    trc = read_trc(write_trc(tmp_path / "a.trc", points(), MARKERS, rate=30, zup_to_yup=True))
    np.testing.assert_allclose(trc.points_mm, points()[..., [1, 2, 0]])  # (X, Y, Z) <- (Y, Z, X)


def test_errors(tmp_path):
    with pytest.raises(EdgecapError, match=r"a\.trc: points must be \(frames >= 1, 3 markers, 3\)"):
        write_trc(tmp_path / "a.trc", points(), MARKERS[:3], rate=30)
    with pytest.raises(EdgecapError, match=r"units must be one of"):
        write_trc(tmp_path / "a.trc", points(), MARKERS, rate=30, units="ft")
    assert not list(tmp_path.iterdir())  # nothing half-written
    path = write_trc(tmp_path / "a.trc", points(), MARKERS, rate=30)
    lines = path.read_text().split("\n")
    path.write_text("\n".join(lines[:-2]) + "\n")
    with pytest.raises(EdgecapError, match=r"a\.trc: NumFrames is 4 but the file has 3 data rows"):
        read_trc(path)
    path.write_text("\n".join(lines[:5] + ["0\t0.0\tabc"] + lines[6:]))
    with pytest.raises(EdgecapError, match=r"a\.trc: data row 1 holds a non-number"):
        read_trc(path)
    (tmp_path / "b.trc").write_text("hello\n")
    with pytest.raises(EdgecapError, match=r"b\.trc: not a \.trc"):
        read_trc(tmp_path / "b.trc")
