"""`edgecap evaluate RUN [--on SET]`: task metrics of a run's trained PyTorch model, on its
validation split (RUN/evaluate.json) or on one of its family's extra evaluation sets
(RUN/evaluate_<set>.json, e.g. real mocap clips).

Each result records the sha256 of the weights it measured, so the report can tell when the model
has been retrained since. The pipeline runs every extra set whose data is present.
"""

from __future__ import annotations

from pathlib import Path

from edgecap import EdgecapError
from edgecap.core.io import sha256_of, write_json

WEIGHTS = "model.safetensors"


def result_path(run_dir: Path, name: str) -> Path:
    return Path(run_dir) / f"evaluate_{name.replace('-', '_')}.json"


def pytorch_predictor(run_dir: Path, expect_family: str | None = None):
    """(family, run config, predict): the run's trained model in its export form, batched."""
    from edgecap.core.runner import TorchRunner, batched
    from edgecap.runs import load_trained_model

    family, run, model = load_trained_model(Path(run_dir), expect_family)
    runner = TorchRunner(family.export_form(model), list(family.input_spec(run.model)), family.output_names(run.model))
    return family, run, batched(runner, None)


def evaluate(run_dir: Path, on: str | None = None, options: dict | None = None,
             progress: bool = True) -> tuple[dict, str]:
    """(the result written, a table to print)."""
    run_dir = Path(run_dir)
    family, run, predict = pytorch_predictor(run_dir)
    stamp = {"family": family.name, "model": "pytorch_fp32", "model_sha256": sha256_of(run_dir / WEIGHTS)}
    if on:
        sets = family.evaluation_sets()
        if on not in sets:
            raise EdgecapError(f"{family.name} has no evaluation set {on!r}; available: "
                               + (", ".join(f"{k} ({v})" for k, v in sets.items()) or "none"))
        result, table = family.evaluate_on(on, predict, run, options or {})
        result = {**stamp, "set": on, "description": sets[on], **result, "table": table}
        write_json(result_path(run_dir, on), result)
        return result, table
    metrics = family.evaluate(predict, family.load_data(run, "val"), progress="evaluate" if progress else None)
    write_json(run_dir / "evaluate.json", {**stamp, "val": metrics})
    return {**stamp, "val": metrics}, "\n".join(f"{k:>16}: {v:.4f}" for k, v in metrics.items()
                                                if isinstance(v, float))


def evaluate_extra_sets(run_dir: Path, say) -> list[str]:
    """Every extra evaluation set of the run's family whose data is here, with default options;
    the others are named with the reason. Returns the sets evaluated."""
    from edgecap.runs import load_run

    family, run = load_run(Path(run_dir))
    done = []
    for name in family.evaluation_sets():
        missing = family.evaluation_set_missing(name, run)
        if missing:
            say(f"evaluation set {name}: skipped ({missing})")
            continue
        _, table = evaluate(run_dir, name)
        say(table)
        done.append(name)
    return done
