"""The validate gate: fp32 rules are two-sided parity, int8 rules bound only the loss."""

import pytest

from edgecap import EdgecapError
from edgecap.stages.validate import check_tolerance

REF = {"ap": 0.500, "mpjpe": 40.0}


def test_parity_rule_fails_a_gain_as_well_as_a_loss():
    rule = {"metrics": ["ap"], "max_abs_delta": 0.001}
    assert check_tolerance({"ap": 0.5005}, REF, rule) == []
    assert "|delta| 0.010 > 0.001" in check_tolerance({"ap": 0.510}, REF, rule)[0]
    assert "|delta| 0.010 > 0.001" in check_tolerance({"ap": 0.490}, REF, rule)[0]


def test_budget_rule_passes_a_gain_and_fails_a_loss_beyond_budget():
    rule = {"metrics": ["ap"], "max_abs_delta": 0.01, "better": "higher"}
    assert check_tolerance({"ap": 0.530}, REF, rule) == []
    assert check_tolerance({"ap": 0.495}, REF, rule) == []
    (problem,) = check_tolerance({"ap": 0.485}, REF, rule)
    assert problem.startswith("ap 0.485 vs PyTorch 0.500") and "loss 0.015 > 0.01" in problem


def test_budget_rule_for_an_error_metric_counts_an_increase_as_the_loss():
    rule = {"metrics": ["mpjpe"], "max_rel_delta": 0.02, "better": "lower"}
    assert check_tolerance({"mpjpe": 30.0}, REF, rule) == []
    assert check_tolerance({"mpjpe": 40.4}, REF, rule) == []
    assert "loss 2.50% > 2.0%" in check_tolerance({"mpjpe": 41.0}, REF, rule)[0]


def test_unknown_direction_is_refused_with_the_field_named():
    with pytest.raises(EdgecapError, match="'better' must be 'higher' or 'lower', got 'up'"):
        check_tolerance({"ap": 0.5}, REF, {"metrics": ["ap"], "max_abs_delta": 0.01, "better": "up"})


def test_min_tensor_bounds_a_field_of_the_tensor_parity():
    rule = {"metrics": ["ap"], "max_abs_delta": 0.01, "min_tensor": {"psnr_db": 40.0}}
    assert check_tolerance({"ap": 0.5}, REF, rule, {"psnr_db": 52.0}) == []
    (problem,) = check_tolerance({"ap": 0.5}, REF, rule, {"psnr_db": 31.5})
    assert problem == "tensor psnr_db 31.50 against PyTorch < 40.0"
    assert check_tolerance({"ap": 0.5}, REF, rule, {"psnr_db": float("nan")})  # NaN fails
    with pytest.raises(EdgecapError, match="min_tensor field 'psnr_db' is not in the tensor parity"):
        check_tolerance({"ap": 0.5}, REF, rule, {"cosine": 1.0})


def test_a_metric_not_measured_on_this_data_is_skipped_on_both_sides_only():
    rule = {"metrics": ["ap", "mpjpe"], "max_abs_delta": 0.01}
    unmeasured = {"ap": 0.500, "mpjpe": None}
    assert check_tolerance({"ap": 0.505, "mpjpe": None}, unmeasured, rule) == []
    assert "ap 0.520" in check_tolerance({"ap": 0.520, "mpjpe": None}, unmeasured, rule)[0]  # the rest still gated
    (problem,) = check_tolerance({"ap": 0.5, "mpjpe": 41.0}, unmeasured, rule)
    assert "mpjpe measured on one side only" in problem
    assert check_tolerance({"ap": 0.5, "mpjpe": None}, REF, rule)
