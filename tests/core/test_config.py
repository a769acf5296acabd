import pytest

from edgecap import EdgecapError
from edgecap.core.config import apply_overrides, from_dict, to_dict
from edgecap.models.lifting.family import LiftingRun


def test_overrides_coerce_types():
    cfg = apply_overrides(LiftingRun(), ["model.window=27", "train.lr=0.01", "train.amp=false",
                                         "data.val_subjects=S9,S11", "model.skeleton=coco"])
    assert cfg.model.window == 27 and cfg.train.lr == 0.01 and cfg.train.amp is False
    assert cfg.data.val_subjects == ("S9", "S11") and cfg.model.skeleton == "coco"
    assert LiftingRun().model.window == 9  # frozen defaults untouched


@pytest.mark.parametrize("bad, message", [
    ("model.windw=3", "unknown config key 'model.windw'"),
    ("nosuch.x=1", "unknown config key"),
    ("model=3", "is a section"),
    ("train.steps=many", "expected int"),
    ("train.steps", "expected KEY=VALUE"),
])
def test_bad_overrides_fail_loudly(bad, message):
    with pytest.raises(EdgecapError, match=message):
        apply_overrides(LiftingRun(), [bad])


def test_round_trip_and_unknown_keys():
    cfg = apply_overrides(LiftingRun(), ["model.window=5"])
    assert from_dict(LiftingRun, to_dict(cfg)) == cfg
    data = to_dict(cfg)
    data["model"]["colour"] = "red"
    with pytest.raises(EdgecapError, match="unknown keys \\['colour'\\]"):
        from_dict(LiftingRun, data)


def test_a_field_missing_from_a_saved_config_takes_its_value_from_before_it_existed():
    """A lifter saved before `model.mirror` existed was trained without mirroring: it must not
    read back as the mirrored default (nor resume as one)."""
    data = to_dict(LiftingRun())
    assert data["model"]["mirror"] is True
    del data["model"]["mirror"], data["model"]["mirror_average"]
    old = from_dict(LiftingRun, data)
    assert old.model.mirror is False and old.model.mirror_average is False
    assert old != LiftingRun()
    assert from_dict(LiftingRun, to_dict(LiftingRun())) == LiftingRun()  # a saved key always wins
