"""Every stage end to end on the tiny run: quantize, export (4 formats x 2 precisions),
validate, bench, report; plus the refusals of a tampered or foreign artifact."""

import json
import shutil
import sys

import numpy as np
import pytest

from edgecap import EdgecapError
from edgecap.stages.bench import bench
from edgecap.stages.export import export
from edgecap.stages.quantize import quantize
from edgecap.stages.report import build_report
from edgecap.stages.validate import ValidationFailed, validate


@pytest.fixture(scope="module")
def exported(exported_run, tmp_path_factory):
    """A copy of the session's exported run: these tests write results into it."""
    run = tmp_path_factory.mktemp("pipeline") / "run"
    shutil.copytree(exported_run, run)
    return run


def test_manifest_lists_eight_artifacts(exported):
    manifest = json.loads((exported / "export" / "manifest.json").read_text())
    got = {(a["format"], a["precision"]) for a in manifest["artifacts"]}
    assert got == {(f, p) for f in ("onnx", "tflite", "executorch", "coreml") for p in ("fp32", "int8")}
    assert manifest["failures"] == []
    for a in manifest["artifacts"]:
        assert len(a["sha256"]) == 64 and a["size_bytes"] > 0
        assert (exported / "export" / a["file"]).exists()
        assert a["runnable_here"] == (a["format"] != "coreml" or sys.platform == "darwin")
    assert manifest["tool_versions"]["torch"].startswith("2.13")
    assert not list((exported / "export").glob(".tmp-*"))  # no half-written leftovers


def test_validate_bench_report(exported):
    # The 2% int8 gate is for trained models (the demo, `make test-slow`); this 40-step model
    # may miss it, so only fp32 must pass here and int8 must stay within 10%.
    try:
        validate(exported, parity_samples=16, progress=False)
    except ValidationFailed as e:
        assert all("_int8." in line for line in str(e).splitlines()[1:]), e
    report = json.loads((exported / "validate.json").read_text())
    ref = report["reference"]["task"]["mpjpe_mm"]
    for row in report["artifacts"]:
        if row["name"].endswith(".mlpackage"):
            assert row["status"] == "skipped" and "macOS" in row["reason"]
        elif "fp32" in row["name"]:
            assert row["status"] == "pass" and abs(row["task"]["mpjpe_mm"] - ref) <= 0.1
            assert row["tensor"]["cosine"] > 0.99999
        else:
            assert abs(row["task"]["mpjpe_mm"] - ref) / ref < 0.10 and row["tensor"]["cosine"] > 0.99
    result = bench(exported, threads=(1,), min_runs=10, min_seconds=0.0, warmup=2, progress=False)
    names = {r["name"] for r in result["rows"]}
    assert "pytorch_fp32" in names and "lifting_int8.tflite" in names and len(names) == 7
    assert all(r["p50_ms"] > 0 and r["peak_rss_mb"] > 0 for r in result["rows"])
    assert {s["name"] for s in result["skipped"]} == {"lifting_fp32.mlpackage", "lifting_int8.mlpackage"}
    full = build_report(exported)
    assert full["validation"]["artifacts"] and full["bench"]["rows"]
    md = (exported / "report.md").read_text()
    assert "lifting_int8.pte" in md and "report_latency_accuracy.png" in md and "Thresholds: fp32: |delta| <= 0.1" in md
    assert (exported / "report_latency_accuracy.png").stat().st_size > 10_000
    assert (exported / "report_deltas.png").stat().st_size > 10_000
    dom = render_in_browser(exported / "report.html")
    assert 'data-plots="ok"' in dom  # every inline plot decoded in a real browser
    assert dom.count("<img") == 2 and "lifting_int8.pte" in dom and "loss &lt;= 2% on mpjpe_mm" in dom
    assert "Core ML runs only on macOS" in dom  # notes kept whole, not cut mid-sentence


def render_in_browser(page) -> str:
    """The DOM of a local page after headless Chromium loaded it and ran its scripts."""
    import subprocess

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("headless Chromium is not installed (.ci/run installs Debian's chromium)")
    proc = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                           "--disable-background-networking", "--disable-component-update", "--disable-sync",
                           f"--user-data-dir={page.parent / '.chromium'}", "--virtual-time-budget=5000", "--dump-dom",
                           page.resolve().as_uri()], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def test_validate_refuses_truncated_artifact(exported, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(exported, run)
    path = run / "export" / "lifting_int8.tflite"
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(EdgecapError, match="lifting_int8.tflite is truncated or modified"):
        validate(run, progress=False)


def test_validate_fails_over_threshold(exported, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(exported, run)
    manifest = json.loads((run / "export" / "manifest.json").read_text())
    # Two-sided and 1e-9 relative: no int8 artifact can meet this, whichever way it errs.
    manifest["tolerances"]["int8"] = {"metrics": ["mpjpe_mm"], "max_rel_delta": 1e-9}
    manifest["artifacts"] = [a for a in manifest["artifacts"] if a["format"] == "onnx"]
    (run / "export" / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValidationFailed, match="lifting_int8.onnx: mpjpe_mm"):
        validate(run, parity_samples=4, progress=False)
    assert json.loads((run / "validate.json").read_text())["failures"]


def test_export_refuses_artifact_of_another_model(exported, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(exported, run)
    manifest = json.loads((run / "export" / "manifest.json").read_text())
    manifest["family"] = "parsing_rcnn"
    (run / "export" / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(EdgecapError, match="holds a 'lifting' run, not 'parsing_rcnn'"):
        validate(run, progress=False)


def test_int8_export_needs_quantize_first(tiny_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run, ignore=shutil.ignore_patterns("quantize"))
    with pytest.raises(EdgecapError, match="run `edgecap quantize"):
        export(run, formats=["onnx"], precisions=["int8"], progress=False)


def test_qat_recipe_flows_into_int8_export(tiny_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    recipe = quantize(run, method="qat", calibration=16, qat_steps=4, progress=False)
    assert recipe["method"] == "qat" and (run / "quantize" / "qat.safetensors").exists()
    assert recipe["qat_objective"] == "task" and recipe["qat_lr"] == 2e-5  # the lifter fine-tunes on its loss
    manifest = export(run, formats=["onnx"], precisions=["int8"], progress=False)
    assert manifest["artifacts"][0]["quantization"]["method"] == "qat"
    quantize(run, method="ptq", calibration=16, progress=False)  # PTQ replaces the QAT weights
    assert not (run / "quantize" / "qat.safetensors").exists()


def test_report_marks_results_of_a_changed_artifact_stale(exported, tmp_path, capsys):
    from edgecap.cli import main

    run = tmp_path / "run"
    shutil.copytree(exported, run)
    manifest = json.loads((run / "export" / "manifest.json").read_text())
    manifest["artifacts"] = [a for a in manifest["artifacts"] if a["format"] == "onnx"]
    (run / "export" / "manifest.json").write_text(json.dumps(manifest))
    (run / "bench.json").unlink(missing_ok=True)  # timed on artifacts this manifest no longer lists
    validate(run, parity_samples=4, progress=False)
    assert main(["report", str(run)]) == 0 and "STALE" not in (run / "report.md").read_text()
    path = run / "export" / "lifting_int8.onnx"
    path.write_bytes(path.read_bytes() + b"\0")  # modified after validation
    assert main(["validate", str(run), "-q"]) == 2 and "truncated or modified" in capsys.readouterr().err
    assert main(["report", str(run)]) == 2
    err = capsys.readouterr().err
    assert "lifting_int8.onnx" in err and "STALE" in err
    report = json.loads((run / "report.json").read_text())
    assert report["stale"] == ["lifting_int8.onnx"]
    rows = {r["name"]: r for r in report["validation"]["artifacts"]}
    assert "modified after export" in rows["lifting_int8.onnx"]["stale"] and "stale" not in rows["lifting_fp32.onnx"]
    md = (run / "report.md").read_text()
    assert "lifting_int8.onnx" in md and "STALE" in md


def test_truncated_tflite_with_a_matching_manifest_entry(exported, tmp_path, capsys):
    """A truncated artifact that someone re-hashed into the manifest: the runtime's own check
    refuses it with one line, no struct.error traceback."""
    from edgecap.cli import main
    from edgecap.core.io import sha256_of

    run = tmp_path / "run"
    shutil.copytree(exported, run)
    path = run / "export" / "lifting_int8.tflite"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 3])
    manifest = json.loads((run / "export" / "manifest.json").read_text())
    for entry in manifest["artifacts"]:
        if entry["name"] == "lifting_int8.tflite":
            entry["sha256"] = sha256_of(path)
    (run / "export" / "manifest.json").write_text(json.dumps(manifest))
    np.save(tmp_path / "kp.npy", np.zeros((10, 17, 3), np.float32))
    code = main(["predict", str(run), "--artifact", "lifting_int8.tflite", "--input", str(tmp_path / "kp.npy"),
                 "--output", str(tmp_path / "o.npy")])
    err = capsys.readouterr().err
    assert code == 2 and "lifting_int8.tflite" in err and "Traceback" not in err and "struct" not in err
    assert not (tmp_path / "o.npy").exists()
