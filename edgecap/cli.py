"""The `edgecap` command: train | quantize | export | validate | bench | report | pipeline | devices | ...

Thin: it parses, checks every argument and the run directory before anything heavy is imported
(so a typo is reported at once), sends the converters' and runtimes' own output to
RUN/logs/<command>.log, and calls the stages. The terminal shows edgecap's progress bars and
results, and the tail of the log when something fails.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

from edgecap import EdgecapError, __version__
from edgecap.core.console import log_tail, quiet_to, say

DEFAULT_RUN = "runs/{model}"
# What a run directory must hold before each command starts: (file, what makes it).
NEEDS = {
    "quantize": ["model.safetensors"], "export": ["model.safetensors"], "predict": ["model.safetensors"],
    "evaluate": ["model.safetensors"], "derive": ["model.safetensors"], "validate": ["export/manifest.json"],
    "bench": ["export/manifest.json"], "report": [],
}
MADE_BY = {"model.safetensors": "edgecap train MODEL --out {run}", "export/manifest.json": "edgecap export {run}"}


def _run_config(model: str, overrides: list[str], preset: str | None = None):
    from edgecap.api import config

    return config(model, overrides, preset)


def _csv(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def _threads(value: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in _csv(value))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--threads expects e.g. 1,2; got {value!r}") from None


def cmd_train(a) -> None:
    from edgecap.stages.train import train

    result = train(a.model, a.run_config, Path(a.out or DEFAULT_RUN.format(model=a.model)), progress=not a.quiet)
    if not result:  # a non-zero DDP rank: rank 0 reports
        return
    for name, metrics in [("val", result["val"])] + list(result["baselines"].items()):
        say(f"{name:>10}: " + ", ".join(f"{k} {v:.2f}" for k, v in metrics.items() if isinstance(v, float)))


def cmd_quantize(a) -> None:
    from edgecap.stages.quantize import quantize

    q = quantize(Path(a.run), method=a.method, calibration=a.calibration, qat_steps=a.qat_steps,
                 qat_lr=a.qat_lr, progress=not a.quiet)
    fmt = lambda m: ", ".join(f"{k} {v:.2f}" for k, v in m.items() if isinstance(v, float))  # noqa: E731
    say(f"{q['method']} recipe written to {Path(a.run) / 'quantize'}\n  fp32:            {fmt(q['fp32'])}"
          f"\n  int8 simulated:  {fmt(q['int8_simulated'])}")


def cmd_export(a) -> None:
    from edgecap.stages.export import export

    m = export(Path(a.run), formats=_csv(a.formats) if a.formats else None,
               precisions=_csv(a.precisions) if a.precisions else None,
               layouts=_csv(a.layouts) if a.layouts else None, progress=not a.quiet)
    for art in m["artifacts"]:
        say(f"{art['name']:<28} {art['size_bytes'] / 1e6:7.2f} MB  {art['scheme']}")


def _target_options(a) -> dict | None:
    """The phone's options (runner folder, working folder kept, cooling) for an adb target."""
    if not a.target.startswith("adb"):
        return None
    options = {"runner_dir": a.runner_dir, "runner": a.runner, "keep": a.keep, "cool_to_c": a.cool_to,
               "cool_timeout_s": a.cool_timeout}
    if getattr(a, "profile", False):  # op profiles go beside the results
        if a.run:
            options["profile_dir"] = str(Path(a.run) / "profiles")
        elif a.out:
            options["profile_dir"] = str(Path(a.out).parent / "profiles")
        else:
            raise EdgecapError("--profile with --artifact needs --out (the profiles go beside it)")
    return options


def cmd_validate(a) -> None:
    from edgecap.stages.validate import format_table, validate

    say(format_table(validate(Path(a.run), target=a.target, progress=not a.quiet, target_options=_target_options(a))))


def cmd_triangulate(a) -> None:
    from edgecap.models.triangulation.recordings import format_summary, triangulate_recording
    from edgecap.runs import open_artifact

    runner = open_artifact(Path(a.artifact)) if a.artifact else None
    summary = triangulate_recording(Path(a.calib), [Path(k) for k in a.keypoints], Path(a.out), unit=a.unit,
                                    layout=a.layout, runner=runner, fps=a.fps, min_confidence=a.min_confidence)
    say(format_summary(summary))


def cmd_devices(a) -> None:
    from edgecap.targets.adb import describe_devices

    say(describe_devices(as_json=a.json))


def cmd_bench(a) -> None:
    from edgecap.stages.bench import bench, bench_files, format_table

    if a.artifact:  # model files, made by edgecap or not
        if a.run:
            raise EdgecapError("give a run directory or --artifact FILE, not both")
        if a.sustained:
            raise EdgecapError("--sustained goes with a run directory (its artifacts, one after the other)")
        report = bench_files([Path(f) for f in a.artifact], threads=a.threads, inputs=a.inputs, min_runs=a.runs,
                             target=a.target, out=Path(a.out) if a.out else None, progress=not a.quiet,
                             target_options=_target_options(a), rounds=a.rounds)
    elif a.run:
        if a.inputs or a.out:
            raise EdgecapError("--inputs and --out go with --artifact; a run's bench writes RUN/bench.json")
        report = bench(Path(a.run), threads=a.threads, min_runs=a.runs, target=a.target, progress=not a.quiet,
                       target_options=_target_options(a), sustained=a.sustained, rounds=a.rounds)
    else:
        raise EdgecapError("give a run directory (edgecap bench RUN) or a model file (edgecap bench --artifact FILE)")
    say(format_table(report))


def cmd_predict(a) -> None:
    from edgecap.core.runner import CheckedRunner, TorchRunner
    from edgecap.runs import check_artifact_model, load_manifest, load_trained_model, open_artifact, verify_artifact

    if a.run is None:  # a model file alone: named arrays in (.npz), named arrays out (.npz)
        if not a.artifact:
            raise EdgecapError("give a run directory, or --artifact FILE with --input INPUTS.npz")
        say(predict_arrays(Path(a.artifact), Path(a.input), Path(a.output)))
        return
    family, run, model = load_trained_model(Path(a.run))
    names, outs = list(family.input_spec(run.model)), family.output_names(run.model)
    if a.artifact:
        entries = {e["name"]: e for e in load_manifest(Path(a.run))["artifacts"]}
        if a.artifact not in entries:
            raise EdgecapError(f"no artifact {a.artifact!r} in the manifest; have {sorted(entries)}")
        path = verify_artifact(Path(a.run), entries[a.artifact])
        runner = open_artifact(path, family, 1, names, outs, trusted=True)
        check_artifact_model(runner, family.name, path)
    else:
        runner = TorchRunner(family.export_form(model), names, outs)
    spec = {n: s.shape for n, s in family.input_spec(run.model).items()}
    runner = CheckedRunner(runner, spec, f"{a.input}")
    say(family.predict_file(runner, run.model, Path(a.input), Path(a.output)))


def predict_arrays(model_path: Path, input_path: Path, output_path: Path) -> str:
    """Run any model file on the named arrays of an .npz; write its named outputs as .npz."""
    import numpy as np

    from edgecap.core.arrays import check_named_arrays
    from edgecap.core.io import atomic_path, load_arrays
    from edgecap.runs import open_artifact

    runner = open_artifact(model_path)
    inputs = load_arrays(input_path, "input file")
    check_named_arrays(inputs, runner.input_shapes, str(input_path))
    outputs = runner.run(inputs)
    for name, value in outputs.items():
        if np.issubdtype(value.dtype, np.floating) and not np.isfinite(value).all():
            raise EdgecapError(f"{model_path.name}: output {name!r} holds NaN/inf for the inputs of {input_path} "
                               "(inputs far outside the model's range?); nothing written")
    with atomic_path(output_path, suffix=".npz") as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **outputs)
    return f"wrote {output_path}: " + ", ".join(f"{k} {tuple(v.shape)}" for k, v in outputs.items())


def cmd_derive(a) -> None:
    from edgecap.runs import derive_run

    derive_run(Path(a.run), Path(a.out), a.set)
    say(f"wrote {a.out}: the weights of {a.run} with {' '.join(a.set)}; run quantize/export/validate/bench on it")


def cmd_evaluate(a) -> None:
    from edgecap.stages.evaluate import evaluate, result_path

    options = {"cache": a.cache, "noise": a.noise, "cameras": a.cameras}
    _, table = evaluate(Path(a.run), a.on, options, progress=not a.quiet)
    say(f"{table}\nwrote {result_path(Path(a.run), a.on) if a.on else Path(a.run) / 'evaluate.json'}")


def cmd_params(a) -> None:
    from edgecap.models import get_family

    table = get_family(a.model).parameter_table()
    if table is None:
        raise EdgecapError(f"{a.model} has no configuration table")
    say(table)


def cmd_report(a) -> None:
    from edgecap.stages.report import build_report

    build_report(Path(a.run))
    say(f"wrote {Path(a.run) / 'report.md'} and report.json")


def cmd_pipeline(a) -> None:
    from edgecap.stages.pipeline import run_pipeline

    run_pipeline(a.model, a.run_config, Path(a.out or DEFAULT_RUN.format(model=a.model)),
                 quant_method=a.quant, formats=_csv(a.formats) if a.formats else None,
                 layouts=_csv(a.layouts) if a.layouts else None, threads=a.threads, progress=not a.quiet,
                 bench_options={"min_runs": a.runs})


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="edgecap", description="Take human-capture models from PyTorch to phones.")
    p.add_argument("--version", action="version", version=f"edgecap {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    def add(name, func, help_text, run_arg=True):
        sp = sub.add_parser(name, help=help_text, description=help_text)
        if run_arg == "optional":
            sp.add_argument("run", nargs="?", help="run directory written by `edgecap train` (e.g. runs/lifting)")
        elif run_arg:
            sp.add_argument("run", help="run directory written by `edgecap train` (e.g. runs/lifting)")
        sp.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
        sp.add_argument("-v", "--verbose", action="store_true",
                        help="show the converters' and runtimes' own output (else it goes to RUN/logs/)")
        sp.set_defaults(func=func)
        return sp

    for name, func, text in [("train", cmd_train, "Train a model on its data (built-in synthetic by default); resumes."),
                             ("pipeline", cmd_pipeline, "Run train, quantize, export, validate, bench and report.")]:
        sp = add(name, func, text, run_arg=False)
        sp.add_argument("model", help="model family, e.g. lifting")
        sp.add_argument("--out", help="run directory (default runs/MODEL)")
        sp.add_argument("--config", help="named configuration, e.g. parsing_rcnn: densepose_rcnn, parsing_rcnn, "
                                         "mobile_a, mobile_b (default)")
        sp.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="config overrides, e.g. --set model.window=27 train.steps=500 (the words with '=' "
                             "after --set)")
        if name == "pipeline":
            sp.add_argument("--quant", choices=["ptq", "qat"], default="ptq", help="int8 method (default ptq)")
            sp.add_argument("--formats", help="comma list of onnx,tflite,executorch,coreml (default all)")
            sp.add_argument("--threads", type=_threads, default=(1, 2), help="bench thread counts (default 1,2)")
            sp.add_argument("--runs", type=int, default=200, help="bench: minimum timed runs per measurement "
                                                                    "(default 200)")
            sp.add_argument("--layouts", help="comma list of the model's layouts to export (default: whole; "
                                              "triangulation: whole,parts; parsing_rcnn also has parts: "
                                              "detector + per-person head)")

    sp = add("quantize", cmd_quantize, "Fix the int8 recipe: calibration set (PTQ) or QAT fine-tuning.")
    sp.add_argument("--method", choices=["ptq", "qat"], default="ptq")
    sp.add_argument("--calibration", type=int, default=None,
                    help="number of calibration inputs (default: the model's, 256 windows for lifting, "
                         "64 training images for parsing_rcnn)")
    sp.add_argument("--qat-steps", type=int, default=300, help="QAT fine-tuning steps (default 300)")
    sp.add_argument("--qat-lr", type=float, default=None,
                    help="QAT peak learning rate, decayed by a cosine (default: the model's, 5e-6 for "
                         "parsing_rcnn, 2e-5 for lifting)")

    sp = add("export", cmd_export, "Export fp32 and int8 artifacts with a manifest.json.")
    sp.add_argument("--formats", help="comma list of onnx,tflite,executorch,coreml (default all)")
    sp.add_argument("--precisions", help="comma list of fp32,int8 (default both)")
    sp.add_argument("--layouts", help="comma list of the model's layouts (default: whole; triangulation: "
                                      "whole,parts (per-view network + hub triangulation); parsing_rcnn also has "
                                      "parts: a detector graph + a per-person DensePose head graph)")

    sp = add("validate", cmd_validate, "Tensor and task-metric parity of every artifact against PyTorch "
                                       "(on a phone: also against the same artifact on this machine).")
    _target_arguments(sp)

    sp = add("bench", cmd_bench, "Latency p50/p90/p99, FPS, peak memory and size per artifact and thread count, "
                                 "of a run's artifacts or of any .onnx/.tflite/.pte file.", run_arg="optional")
    sp.add_argument("--artifact", action="append", metavar="FILE",
                    help="a model file to bench instead of a run (repeatable); edgecap need not have made it")
    sp.add_argument("--inputs", metavar="NPZ", help="with --artifact: named input arrays (default: random, "
                                                    "of the model's own input shapes)")
    sp.add_argument("--out", metavar="JSON", help="with --artifact: write the results here")
    sp.add_argument("--threads", type=_threads, default=(1, 2), help="thread counts (default 1,2)")
    sp.add_argument("--runs", type=int, default=200, help="minimum timed runs per measurement (default 200)")
    sp.add_argument("--rounds", type=int, default=5, help="artifacts take turns this many times (default 5); "
                                                          "on a phone each round is one run of the runner")
    _target_arguments(sp)
    sp.add_argument("--profile", action="store_true",
                    help="adb: after timing, one more run with the runtime's op profiler; the profile is pulled "
                         "to RUN/profiles/ and summed per operator type")
    sp.add_argument("--sustained", type=float, metavar="SECONDS",
                    help="adb: then run each artifact alone this long, tracing latency, CPU frequencies and "
                         "temperatures, and report when throttling began")

    sp = add("triangulate", cmd_triangulate, "3D joints from OpenPose keypoints of several calibrated cameras "
                                             "(one folder per camera): OUT.npz, OUT.trc and reprojection errors.",
             run_arg=False)
    sp.add_argument("--calib", required=True, help="calibration: anipose/Pose2Sim .toml or CMU Panoptic .json")
    sp.add_argument("--keypoints", required=True, nargs="+", metavar="DIR",
                    help="OpenPose JSON folders, one per camera (matched to cameras by name, else by order)")
    sp.add_argument("--out", required=True, help="output path without suffix: writes OUT.npz and OUT.trc")
    sp.add_argument("--unit", default="mm", choices=["mm", "cm", "m"], help="the .toml calibration's length unit "
                                                                             "(Pose2Sim writes m; default mm)")
    sp.add_argument("--layout", choices=["BODY_25", "BODY_25B", "COCO_18", "HALPE_26"],
                    help="OpenPose keypoint layout (needed for 25 keypoints; else from the count)")
    sp.add_argument("--fps", type=float, default=30.0, help="frame rate written to the .trc (default 30)")
    sp.add_argument("--min-confidence", type=float, default=0.2, help="keypoints below count as missing")
    sp.add_argument("--artifact", help="an exported triangulation artifact to run instead of PyTorch")

    sp = add("devices", cmd_devices, "The connected Android devices: model, SoC, ABI, SDK, CPU clusters, big-core "
                                     "mask.", run_arg=False)
    sp.add_argument("--json", action="store_true", help="print JSON")

    sp = add("predict", cmd_predict, "Run a model or artifact over an input file: a run's model on its task's "
                                     "files (lifting: a (frames, J, 3) .npy -> .npy of 3D joints; parsing_rcnn: an "
                                     "image -> IUV .png + contour drawing), or any model file on an .npz of named "
                                     "arrays -> .npz of its outputs.", run_arg="optional")
    sp.add_argument("--input", required=True, help="lifting: .npy of 2D keypoints (frames, J, 3) = x_px, y_px, "
                                                    "validity; parsing_rcnn: an RGB image; a model file: .npz")
    sp.add_argument("--output", required=True, help="lifting: .npy of 3D joints (frames, J, 3) in mm; parsing_rcnn: "
                                                     "IUV .png (the contour drawing goes beside it, *_contours.png); "
                                                     "a model file: .npz")
    sp.add_argument("--artifact", help="with a run: an artifact name from its manifest (default: PyTorch eager); "
                                       "alone: a model file")

    sp = add("evaluate", cmd_evaluate, "Task metrics of the trained PyTorch model on the validation set "
                                       "(evaluate.json), or on one of the family's extra evaluation sets (--on).")
    sp.add_argument("--on", metavar="SET", help="an extra evaluation set, e.g. lifting: real-motion (real mocap "
                                                "clips; fetch them once with `make real-motion`); reenactment: "
                                                "real-faces (`make face-assets`)")
    sp.add_argument("--cache", help="the set's cache folder: real-motion ~/.cache/edgecap/real-motion or "
                                    "$EDGECAP_REAL_MOTION; reenactment's real-faces ~/.cache/edgecap/face-assets or "
                                    "$EDGECAP_FACE_ASSETS (the defaults)")
    sp.add_argument("--noise", action="store_true", help="real-motion: detector-like 2D noise (default exact 2D)")
    sp.add_argument("--cameras", type=int, default=None, help="real-motion: virtual cameras per shot (default 16)")

    sp = add("derive", cmd_derive, "A new run directory with a trained run's weights under changed settings "
                                   "that keep every weight's shape (e.g. model.input_size=512).")
    sp.add_argument("--out", required=True, help="the new run directory")
    sp.add_argument("--set", action="append", required=True, metavar="KEY=VALUE", help="e.g. model.input_size=512")

    sp = add("params", cmd_params, "Print the parameter table of a model's configurations.", run_arg=False)
    sp.add_argument("model", help="model family, e.g. parsing_rcnn")

    add("report", cmd_report, "Write report.json, report.md and the latency-accuracy plot.")
    return p


def _target_arguments(sp) -> None:
    sp.add_argument("--target", default="host", help="where the artifacts run: host (default), or adb / adb:SERIAL "
                                                     "for an Android phone")
    sp.add_argument("--runner-dir", metavar="DIR", help="adb: folder of runners built for the phone (benchmark_model, "
                                                        "onnxruntime_perf_test, executor_runner, edgecap_runner and "
                                                        "their .so files); default: [adb] runner_dir in "
                                                        "~/.config/edgecap/config.toml")
    sp.add_argument("--runner", help="adb: use this runner of the folder for every artifact")
    sp.add_argument("--keep", action="store_true", help="adb: keep the working folder on the device")
    sp.add_argument("--cool-to", type=float, default=40.0, metavar="CELSIUS",
                    help="adb: before measuring, wait for the hottest zone to cool below this (default 40)")
    sp.add_argument("--cool-timeout", type=float, default=180.0, metavar="SECONDS",
                    help="adb: wait at most this long to cool (default 180)")


def split_set_values(argv: list[str]) -> list[str]:
    """`--set a=1 b=2 MODEL` -> `--set a=1 --set b=2 MODEL`: --set takes the KEY=VALUE words after
    it and leaves the first word without "=" to the command (it used to swallow the positional)."""
    out, i = [], 0
    while i < len(argv):
        out.append(argv[i])
        if argv[i] == "--set":
            values = []
            while i + 1 < len(argv) and "=" in argv[i + 1] and not argv[i + 1].startswith("-"):
                values.append(argv[i + 1])
                i += 1
            if values:
                out += values[:1]
                for v in values[1:]:
                    out += ["--set", v]
        i += 1
    return out


def check_run_dir(command: str, run: str | None) -> None:
    """The run directory exists and holds what `command` reads, or a message saying what to run."""
    if run is None or command not in NEEDS:
        return
    path = Path(run)
    if not path.is_dir():
        raise EdgecapError(f"run directory {path} does not exist (a run is made by `edgecap train MODEL --out {path}`)")
    if not (path / "run.json").is_file():
        raise EdgecapError(f"{path} is not a run directory: it has no run.json (made by `edgecap train`)")
    for need in NEEDS[command]:
        if not (path / need).is_file():
            raise EdgecapError(f"{path / need} not found: run `{MADE_BY[need].format(run=path)}` first")


def _log_path(a) -> Path | None:
    """Where the libraries' output goes while the command runs; None for light commands."""
    if a.command in ("params", "devices") or getattr(a, "verbose", False):
        return None
    if a.command == "triangulate":
        return _scratch_log(a.command) if a.artifact else None
        return None
    run = getattr(a, "run", None) or getattr(a, "out", None)
    if a.command in ("train", "pipeline"):
        run = a.out or DEFAULT_RUN.format(model=a.model)
    if a.command == "bench" and a.artifact:
        return Path(a.out).with_suffix(".log") if a.out else _scratch_log(a.command)
    if a.command == "predict" and not run:
        return _scratch_log(a.command)
    return Path(run) / "logs" / f"{a.command}.log" if run else None


def _scratch_log(command: str) -> Path:
    """The log of a command with no run directory (a model file of the user's)."""
    import os
    import tempfile

    return Path(tempfile.gettempdir()) / f"edgecap-logs-{os.getuid()}" / f"{command}.log"


def check_arguments(a) -> None:
    """Every option of the command, before anything runs: cheap checks first (names, numbers),
    then those that need the model family (config keys, presets, layouts)."""
    from edgecap.backends import BACKENDS, PRECISIONS
    from edgecap.models import FAMILIES

    for fmt in _csv(getattr(a, "formats", None) or ""):
        if fmt not in BACKENDS:
            raise EdgecapError(f"unknown format {fmt!r} in --formats; available: {', '.join(BACKENDS)}")
    for p in _csv(getattr(a, "precisions", None) or ""):
        if p not in PRECISIONS:
            raise EdgecapError(f"unknown precision {p!r} in --precisions; available: {', '.join(PRECISIONS)}")
    if any(t < 1 for t in getattr(a, "threads", None) or ()):
        raise EdgecapError(f"--threads must be positive, got {','.join(map(str, a.threads))}")
    target = getattr(a, "target", "host")
    if target != "host" and target.split(":", 1)[0] != "adb":
        raise EdgecapError(f"unknown target {target!r}; available: host, adb, adb:SERIAL")
    if target == "host" and any(getattr(a, k, None) for k in ("runner_dir", "runner", "keep", "sustained", "profile")):
        raise EdgecapError("--runner-dir, --runner, --keep, --profile and --sustained go with --target adb")
    if getattr(a, "runner", None):
        from edgecap.targets.adb.tools import TOOLS

        if a.runner not in TOOLS:
            raise EdgecapError(f"unknown runner {a.runner!r}; available: {', '.join(TOOLS)}")
    if getattr(a, "sustained", None) is not None and a.sustained <= 0:
        raise EdgecapError(f"--sustained must be a positive number of seconds, got {a.sustained:g}")
    if getattr(a, "runner_dir", None) and not Path(a.runner_dir).is_dir():
        raise EdgecapError(f"--runner-dir: folder not found: {a.runner_dir}")
    if getattr(a, "rounds", 1) < 1:
        raise EdgecapError(f"--rounds must be at least 1, got {a.rounds}")
    if getattr(a, "runs", 1) < 1:
        raise EdgecapError(f"--runs must be at least 1, got {a.runs}")
    files = []
    if a.command == "bench":
        files = [(f, "model file") for f in a.artifact or []] + ([(a.inputs, "--inputs file")] if a.inputs else [])
    if a.command == "predict":
        files = [(a.input, "input file")] + ([(a.artifact, "model file")] if a.artifact and not a.run else [])
    if a.command == "triangulate":
        files = [(a.calib, "calibration file")] + [(k, "keypoint folder") for k in a.keypoints] + \
                ([(a.artifact, "model file")] if a.artifact else [])
    for f, what in files:
        if not Path(f).exists():
            raise EdgecapError(f"{what} not found: {f}")
    model = getattr(a, "model", None)
    if model is not None and model not in FAMILIES:
        raise EdgecapError(f"unknown model {model!r}; available: {', '.join(FAMILIES)}")
    if a.command in ("train", "pipeline"):
        a.run_config = _run_config(a.model, a.set, a.config)
    if a.command == "pipeline":
        from edgecap.models import get_family
        from edgecap.stages.export import check_options

        check_options(get_family(a.model), _csv(a.formats) if a.formats else None, None,
                      _csv(a.layouts) if a.layouts else None)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(split_set_values(list(sys.argv[1:] if argv is None else argv)))
    log = None
    try:
        check_run_dir(args.command, getattr(args, "run", None))
        check_arguments(args)
        log = _log_path(args)
        with quiet_to(log) if log else contextlib.nullcontext():
            args.func(args)
    except EdgecapError as e:
        print(f"edgecap {args.command}: error: {e}", file=sys.stderr)
        tail = log_tail(log) if log else []
        if tail:
            print(f"last lines of {log}:\n  " + "\n  ".join(tail), file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("interrupted; completed checkpoints and artifacts are kept", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
