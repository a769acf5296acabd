"""`edgecap validate`: every artifact against PyTorch eager, at tensor and at task level.

Tensor parity: max |diff| and cosine on a sample of validation inputs. Task parity: the family's
evaluator over the whole validation set through the artifact's runner, beside PyTorch's
figures, with per-precision thresholds from the manifest. Any threshold exceeded raises
`ValidationFailed` naming the artifact and the margin (the CLI exits 1).
"""

from __future__ import annotations

from pathlib import Path

from edgecap import EdgecapError
from edgecap.core.console import progress as progress_bar
from edgecap.core.io import write_json
from edgecap.core.runner import RunnerUnavailable, TorchRunner, batched
from edgecap.runs import check_artifact_model, load_manifest, load_trained_model, open_artifact, verify_artifact
from edgecap.targets import get_target


class ValidationFailed(EdgecapError):
    exit_code = 1


def check_tolerance(task: dict, reference: dict, rule: dict, tensor: dict | None = None) -> list[str]:
    """Problems with an artifact's task metrics against PyTorch's, under one precision's rule.
    A rule's optional "min_tensor" ({field: lowest value}) also bounds fields of the family's
    tensor parity (`tensor`, from ModelFamily.output_parity), e.g. an output image's PSNR to PyTorch's.

    A metric that PyTorch's evaluation reports as None is not measured on this data (a judge it
    needs is missing) and is skipped, as long as the artifact's is None too.

    Without "better", the rule bounds |delta| both ways: fp32 is a parity check, and an artifact
    that beats PyTorch is as wrong as one that trails it. With "better" ("higher" or "lower"), it
    bounds only the loss: an int8 budget, where a gain is quantization noise to report, not a fault.
    """
    if not isinstance(rule, dict) or not isinstance(rule.get("metrics"), list) or not rule["metrics"]:
        raise EdgecapError(f"manifest tolerances: a rule must be an object with a list 'metrics', got {rule!r}")
    missing = [m for m in rule["metrics"] if m not in task or m not in reference]
    if missing:
        raise EdgecapError(f"manifest tolerances: metrics {missing} are not measured by this model "
                           f"(it reports {sorted(reference)})")
    better = rule.get("better")
    signs = {None: 0, "higher": -1, "lower": 1}
    if better not in signs:
        raise EdgecapError(f"manifest tolerances: 'better' must be 'higher' or 'lower', got {better!r}")
    sign = signs[better]
    problems = []
    for metric in rule["metrics"]:
        if reference[metric] is None or task[metric] is None:  # not measured on this data (e.g. no judge for it)
            if (reference[metric] is None) != (task[metric] is None):
                problems.append(f"{metric} measured on one side only (artifact {task[metric]}, "
                                f"PyTorch {reference[metric]})")
            continue
        delta = task[metric] - reference[metric]
        loss, what = (abs(delta), "|delta|") if sign == 0 else (max(sign * delta, 0.0), "loss")
        if "max_abs_delta" in rule and loss > rule["max_abs_delta"]:
            problems.append(f"{metric} {task[metric]:.3f} vs PyTorch {reference[metric]:.3f} "
                            f"({what} {loss:.3f} > {rule['max_abs_delta']})")
        if "max_rel_delta" in rule and loss / reference[metric] > rule["max_rel_delta"]:
            problems.append(f"{metric} {task[metric]:.3f} vs PyTorch {reference[metric]:.3f} "
                            f"({what} {100 * loss / reference[metric]:.2f}% > {100 * rule['max_rel_delta']:.1f}%)")
    for field, lowest in (rule.get("min_tensor") or {}).items():
        if tensor is None or field not in tensor:
            raise EdgecapError(f"manifest tolerances: min_tensor field {field!r} is not in the tensor parity "
                               f"(it has {sorted(tensor or {})})")
        if not tensor[field] >= lowest:
            problems.append(f"tensor {field} {tensor[field]:.2f} against PyTorch < {lowest}")
    return problems


def validate(run_dir: Path, parity_samples: int = 256, target: str = "host", progress: bool = True,
             target_options: dict | None = None) -> dict:
    """Every artifact on `target` against PyTorch. On a device, each artifact's outputs there are
    also compared with the same artifact's on this machine, tensor by tensor and metric by metric."""
    run_dir = Path(run_dir)
    manifest = load_manifest(run_dir)
    family, run, model = load_trained_model(run_dir, expect_family=manifest["family"])
    with get_target(target, run_dir / "logs" / "validate.log", target_options) as tgt:
        return _validate(run_dir, manifest, family, run, model, tgt, parity_samples, progress)


def _validate(run_dir, manifest, family, run, model, tgt, parity_samples: int, progress: bool) -> dict:
    val = family.load_data(run, "val")
    names, out_names = list(manifest["inputs"]), manifest["outputs"]
    reference = TorchRunner(family.export_form(model), names, out_names)
    ref_task = family.evaluate(batched(reference, None), val)
    sample = family.calibration_inputs(val, parity_samples, seed=1)
    on_device = not tgt.host_extras
    device = tgt.device_facts()
    results, failures = [], []
    for entry in progress_bar(manifest["artifacts"], desc="validate", disable=not progress):
        path = verify_artifact(run_dir, entry)
        row = {"name": entry["name"], "format": entry["format"], "precision": entry["precision"],
               "sha256": entry["sha256"]}
        try:
            runner = tgt.runner(path, family, 1, names, out_names)
        except RunnerUnavailable as e:
            results.append({**row, "status": "skipped", "reason": str(e)})
            continue
        check_artifact_model(runner, family.name, path)
        outputs = list(zip(runner.run_many(sample), sample))
        row["tensor"] = family.output_parity((out, reference.run(x)) for out, x in outputs)
        row["task"] = family.evaluate(batched(runner, 1), val, progress=f"{entry['name']}" if progress else None)
        if on_device:  # the same artifact on this machine: what the device changes, if anything
            host = open_artifact(path, family, 1, names, out_names, trusted=True)
            row["host_task"] = family.evaluate(batched(host, 1), val)
            row["device_vs_host"] = family.output_parity((out, host.run(x)) for out, x in outputs)
        if entry["precision"] not in manifest["tolerances"]:
            raise EdgecapError(f"manifest tolerances have no rule for precision {entry['precision']!r}")
        problems = check_tolerance(row["task"], ref_task, manifest["tolerances"][entry["precision"]], row["tensor"])
        row["status"] = "fail" if problems else "pass"
        row["problems"] = problems
        failures += [f"{entry['name']}: {p}" for p in problems]
        results.append(row)
    report = {"family": family.name, "target": tgt.name, "device": device,
              "reference": {"name": "pytorch_fp32", "task": ref_task},
              "tolerances": manifest["tolerances"], "artifacts": results, "failures": failures}
    write_json(run_dir / "validate.json", report)
    if failures:
        raise ValidationFailed("validation failed:\n  " + "\n  ".join(failures))
    return report


def _gated_fields(tolerances: dict) -> list[str]:
    """Tensor-parity fields some precision's rule bounds (min_tensor), shown beside max|diff|."""
    return sorted({k for rule in tolerances.values() for k in (rule.get("min_tensor") or {})})


def format_table(report: dict) -> str:
    ref = report["reference"]["task"]
    metrics = report["tolerances"]["fp32"]["metrics"]
    widths = [max(12, len(m.removesuffix("_mm")) + 2) for m in metrics]
    w = max([26] + [len(r["name"]) + 1 for r in report["artifacts"]])

    def cells(values: dict) -> str:
        return "".join(f"{values[m]:{n}.3f}" if values[m] is not None else f"{'n/a':>{n}}"
                       for m, n in zip(metrics, widths))

    head = "".join(f"{m.removesuffix('_mm'):>{n}}" for m, n in zip(metrics, widths))
    lines = [f"target: {report.get('target', 'host')}" + (f" ({report['device'].get('manufacturer', '')} "
                                                          f"{report['device'].get('model', '')})"
                                                          if report.get("target", "host") != "host" else ""),
             f"{'artifact':<{w}} {'status':<8}{head} {'delta ' + metrics[0].removesuffix('_mm'):>14} {'max|diff|':>10} {'cosine':>9}",
             f"{'pytorch_fp32 (reference)':<{w}} {'':<8}" + cells(ref)]
    for r in report["artifacts"]:
        if r.get("stale"):
            lines.append(f"{r['name']:<{w}} STALE    {r['stale']}")
            continue
        if r["status"] == "skipped":
            lines.append(f"{r['name']:<{w}} skipped  {r['reason']}")
            continue
        t, p = r["task"], r["tensor"]
        parity = (f" {p['max_abs_diff']:10.2e} {p['cosine']:9.6f}" if "cosine" in p
                  else "  " + ", ".join(f"{k} {v:.3g}" for k, v in p.items() if k != "samples"))
        parity += "".join(f"  {k} {p[k]:.1f}" for k in _gated_fields(report["tolerances"]) if k in p)
        lines.append(f"{r['name']:<{w}} {r['status']:<8}" + cells(t)
                     + f" {t[metrics[0]] - ref[metrics[0]]:+14.3f}" + parity)
        if "host_task" in r:  # on a device: the same artifact on this machine
            h, d = r["host_task"], r["device_vs_host"]
            same = (f"max|diff| {d['max_abs_diff']:.2e}, cosine {d['cosine']:.6f}" if "cosine" in d
                    else ", ".join(f"{k} {v:.3g}" for k, v in d.items() if k != "samples"))
            lines.append(f"{'  same file on the host':<{w}} {'':<8}" + cells(h)
                         + f" {t[metrics[0]] - h[metrics[0]]:+14.3f}  device vs host: {same}")
    return "\n".join(lines)
