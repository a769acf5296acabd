"""The report's training table: the trained model, other solvers of its outputs, the baselines."""

from edgecap.stages.report import _markdown, _training_rows


def test_training_rows_include_the_same_outputs_solved_otherwise():
    tr = {"steps": 10, "device": "cpu",
          "val": {"mpjpe_mm": 80.0, "invalid_share": 0.0, "samples": 320,
                  "same_2d": {"unweighted": {"mpjpe_mm": 100.0}, "ransac": {"mpjpe_mm": 90.0, "invalid_share": 0.0}}},
          "baselines": {"mean_pose": {"mpjpe_mm": 160.0, "invalid_share": 0.0}}}
    names = [n for n, _ in _training_rows(tr)]
    assert names == ["trained", "same_2d: unweighted", "same_2d: ransac", "mean_pose"]
    md = _markdown({"run": {"family": "triangulation"}, "training": tr}, [])
    assert "| same_2d: unweighted | 100.00 |  |" in md  # a metric the solver lacks stays empty, columns aligned
    assert "| mean_pose | 160.00 | 0.00 |" in md
