"""The `edgecap` command: train | quantize | export | validate | bench | report | pipeline."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from edgecap import EdgecapError, __version__

DEFAULT_RUN = "runs/{model}"


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
    from edgecap.train.loop import train

    result = train(a.model, _run_config(a.model, a.set, a.config), Path(a.out or DEFAULT_RUN.format(model=a.model)),
                   progress=not a.quiet)
    if not result:  # a non-zero DDP rank: rank 0 reports
        return
    for name, metrics in [("val", result["val"])] + list(result["baselines"].items()):
        print(f"{name:>10}: " + ", ".join(f"{k} {v:.2f}" for k, v in metrics.items() if isinstance(v, float)))


def cmd_quantize(a) -> None:
    from edgecap.quantize.stage import quantize

    q = quantize(Path(a.run), method=a.method, calibration=a.calibration, qat_steps=a.qat_steps,
                 qat_lr=a.qat_lr, progress=not a.quiet)
    fmt = lambda m: ", ".join(f"{k} {v:.2f}" for k, v in m.items() if isinstance(v, float))  # noqa: E731
    print(f"{q['method']} recipe written to {Path(a.run) / 'quantize'}\n  fp32:            {fmt(q['fp32'])}"
          f"\n  int8 simulated:  {fmt(q['int8_simulated'])}")


def cmd_export(a) -> None:
    from edgecap.export.stage import export

    m = export(Path(a.run), formats=_csv(a.formats) if a.formats else None,
               precisions=_csv(a.precisions) if a.precisions else None,
               layouts=_csv(a.layout) if a.layout else None, progress=not a.quiet)
    for art in m["artifacts"]:
        print(f"{art['name']:<28} {art['size_bytes'] / 1e6:7.2f} MB  {art['scheme']}")


def cmd_validate(a) -> None:
    from edgecap.runtime.validate import format_table, validate

    print(format_table(validate(Path(a.run), progress=not a.quiet)))


def cmd_bench(a) -> None:
    from edgecap.runtime.bench import bench, format_table

    print(format_table(bench(Path(a.run), threads=a.threads, min_runs=a.runs, target=a.target, progress=not a.quiet)))


def cmd_predict(a) -> None:
    from edgecap.export.stage import load_manifest, verify_artifact
    from edgecap.runs import load_trained_model
    from edgecap.runtime import CheckedRunner, TorchRunner, check_artifact_model, open_runner

    family, run, model = load_trained_model(Path(a.run))
    names, outs = list(family.input_spec(run.model)), family.output_names(run.model)
    if a.artifact:
        entries = {e["name"]: e for e in load_manifest(Path(a.run))["artifacts"]}
        if a.artifact not in entries:
            raise EdgecapError(f"no artifact {a.artifact!r} in the manifest; have {sorted(entries)}")
        entry = entries[a.artifact]
        path = verify_artifact(Path(a.run), entry)
        runner = open_runner(path, entry["format"], 1, names, outs)
        check_artifact_model(runner, family.name, path)
    else:
        runner = TorchRunner(family.export_form(model), names, outs)
    spec = {n: s.shape for n, s in family.input_spec(run.model).items()}
    runner = CheckedRunner(runner, spec, f"{a.input}")
    print(family.predict_file(runner, run.model, Path(a.input), Path(a.output)))


def cmd_derive(a) -> None:
    from edgecap.runs import derive_run

    derive_run(Path(a.run), Path(a.out), a.set)
    print(f"wrote {a.out}: the weights of {a.run} with {' '.join(a.set)}; run quantize/export/validate/bench on it")


def cmd_evaluate(a) -> None:
    from edgecap.io import write_json
    from edgecap.runs import load_trained_model
    from edgecap.runtime import TorchRunner, batched

    family, run, model = load_trained_model(Path(a.run))
    runner = TorchRunner(family.export_form(model), list(family.input_spec(run.model)), family.output_names(run.model))
    data = family.load_split(run, "val")
    metrics = family.evaluate(batched(runner, None), data, progress=None if a.quiet else "evaluate")
    write_json(Path(a.run) / "evaluate.json", {"family": family.name, "model": "pytorch_fp32", "val": metrics})
    print("\n".join(f"{k:>16}: {v:.4f}" for k, v in metrics.items() if isinstance(v, float)))


def cmd_params(a) -> None:
    from edgecap.models import get_family

    family = get_family(a.model)
    if not hasattr(family, "parameter_table"):
        raise EdgecapError(f"{a.model} has no configuration table")
    print(family.parameter_table())


def cmd_report(a) -> None:
    from edgecap.report import build_report

    build_report(Path(a.run))
    print(f"wrote {Path(a.run) / 'report.md'} and report.json")


def cmd_pipeline(a) -> None:
    from edgecap.pipeline import run_pipeline

    run_pipeline(a.model, _run_config(a.model, a.set, a.config), Path(a.out or DEFAULT_RUN.format(model=a.model)),
                 quant_method=a.quant, formats=_csv(a.formats) if a.formats else None, threads=a.threads,
                 progress=not a.quiet, split_formats=_csv(a.split) if a.split else None,
                 bench_options={"min_runs": a.runs})


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="edgecap", description="Take human-capture models from PyTorch to phones.")
    p.add_argument("--version", action="version", version=f"edgecap {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    def add(name, func, help_text, run_arg=True):
        sp = sub.add_parser(name, help=help_text, description=help_text)
        if run_arg:
            sp.add_argument("run", help="run directory written by `edgecap train` (e.g. runs/lifting)")
        sp.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
        sp.set_defaults(func=func)
        return sp

    for name, func, text in [("train", cmd_train, "Train a model on its data (built-in synthetic by default); resumes."),
                             ("pipeline", cmd_pipeline, "Run train, quantize, export, validate, bench and report.")]:
        sp = add(name, func, text, run_arg=False)
        sp.add_argument("model", help="model family, e.g. lifting")
        sp.add_argument("--out", help="run directory (default runs/MODEL)")
        sp.add_argument("--config", help="named configuration, e.g. parsing_rcnn: densepose_rcnn, parsing_rcnn, "
                                         "mobile_a, mobile_b (default)")
        sp.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="config overrides, e.g. model.window=27 train.steps=500 data.source=h36m")
        if name == "pipeline":
            sp.add_argument("--quant", choices=["ptq", "qat"], default="ptq", help="int8 method (default ptq)")
            sp.add_argument("--formats", help="comma list of onnx,tflite,executorch,coreml (default all)")
            sp.add_argument("--threads", type=_threads, default=(1, 2), help="bench thread counts (default 1,2)")
            sp.add_argument("--runs", type=int, default=200, help="bench: minimum timed runs per measurement "
                                                                    "(default 200)")
            sp.add_argument("--split", metavar="FORMATS",
                            help="also export the split layout in these formats, e.g. executorch (parsing_rcnn)")

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
    sp.add_argument("--layout", help="comma list of whole,split (default whole); split = detector graph + "
                                     "per-RoI DensePose head graph, run as one model (parsing_rcnn)")

    add("validate", cmd_validate, "Tensor and task-metric parity of every artifact against PyTorch.")

    sp = add("bench", cmd_bench, "Latency p50/p90/p99, FPS, peak memory and size per artifact and thread count.")
    sp.add_argument("--threads", type=_threads, default=(1, 2), help="thread counts (default 1,2)")
    sp.add_argument("--runs", type=int, default=200, help="minimum timed runs per measurement (default 200)")
    sp.add_argument("--target", default="host", help="where to run: host (default)")

    sp = add("predict", cmd_predict, "Run a model or artifact over an input file (lifting: a (frames, J, 3) .npy "
                                     "-> .npy of 3D joints; parsing_rcnn: an image -> IUV .png + contour drawing).")
    sp.add_argument("--input", required=True, help="lifting: .npy of 2D keypoints (frames, J, 3) = x_px, y_px, "
                                                    "validity; parsing_rcnn: an RGB image")
    sp.add_argument("--output", required=True, help="lifting: .npy of 3D joints (frames, J, 3) in mm; parsing_rcnn: "
                                                     "IUV .png (the contour drawing goes beside it, *_contours.png)")
    sp.add_argument("--artifact", help="artifact name from the manifest (default: PyTorch eager)")

    add("evaluate", cmd_evaluate, "Task metrics of the trained PyTorch model on the validation set (evaluate.json).")

    sp = add("derive", cmd_derive, "A new run directory with a trained run's weights under changed settings "
                                   "that keep every weight's shape (e.g. model.input_size=512).")
    sp.add_argument("--out", required=True, help="the new run directory")
    sp.add_argument("--set", nargs="+", required=True, metavar="KEY=VALUE", help="e.g. model.input_size=512")

    sp = add("params", cmd_params, "Print the parameter table of a model's configurations.", run_arg=False)
    sp.add_argument("model", help="model family, e.g. parsing_rcnn")

    add("report", cmd_report, "Write report.json, report.md and the latency-accuracy plot.")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except EdgecapError as e:
        print(f"edgecap {args.command}: error: {e}", file=sys.stderr)
        return getattr(e, "exit_code", 2)
    except KeyboardInterrupt:
        print("interrupted; completed checkpoints and artifacts are kept", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
