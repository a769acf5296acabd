"""The adb target end to end against a simulated phone, through the real adb client.

Timings here are the host's (the simulated device runs its runners on this machine); the tests
check what edgecap does with a phone: facts, pushing, pinning, interleaving, heat, parity, failures.
"""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from edgecap import EdgecapError
from edgecap.stages.bench import bench, bench_files, format_table
from edgecap.stages.validate import validate
from edgecap.targets import get_target
from edgecap.targets.base import BenchOptions
from tests.targets.adb.conftest import needs_adb, runner_folder

pytestmark = needs_adb


@pytest.fixture
def run(exported_run, tmp_path):
    """A copy of the exported tiny run, without the Core ML artifacts (never run on Android)."""
    copy = tmp_path / "run"
    shutil.copytree(exported_run, copy)
    return copy


def edgecap_cli(*args, env_socket, cwd=None):
    env = {**os.environ, "ADB_SERVER_SOCKET": env_socket, "PYTHONWARNINGS": "ignore"}
    return subprocess.run([sys.executable, "-m", "edgecap.cli", *args], capture_output=True, text=True, env=env,
                          timeout=600, cwd=cwd)


def runner_calls(device):
    return [c for c in device.commands if " taskset " in f" {c}" or c.startswith("LD_LIBRARY_PATH")]


def test_devices_lists_the_facts(phone):
    server, _ = phone
    done = edgecap_cli("devices", env_socket=server.socket_spec)
    assert done.returncode == 0, done.stderr
    assert "SIM0001: edgecap-test edgecap simulated device" in done.stdout
    assert "SoC SIM8000, ABI arm64-v8a, Android 14 (SDK 34)" in done.stdout
    assert "big cores [4, 5, 6, 7] (taskset mask f0)" in done.stdout
    facts = json.loads(edgecap_cli("devices", "--json", env_socket=server.socket_spec).stdout)[0]
    assert [c["max_mhz"] for c in facts["clusters"]] == [1800, 2400, 3000]


def test_bench_a_run_on_the_phone(phone, run, tmp_path):
    server, device = phone
    runners = runner_folder(tmp_path / "runners", "edgecap_runner", "benchmark_model")
    report = bench(run, threads=(1, 2), min_runs=6, min_seconds=0.0, warmup=1, rounds=2, target="adb",
                   progress=False, target_options={"runner_dir": str(runners)})
    assert report["target"] == "adb:SIM0001" and report["device"]["model"] == "edgecap simulated device"
    rows = {(r["name"], r["threads"]): r for r in report["rows"]}
    assert {n for n, _ in rows} == {f"lifting_{p}.{s}" for p in ("fp32", "int8") for s in ("onnx", "tflite", "pte")}
    assert [s["name"] for s in report["skipped"]] == ["lifting_fp32.mlpackage", "lifting_int8.mlpackage"]
    assert not any(r["format"] == "pytorch" for r in report["rows"])  # no host extras on a phone
    onnx, tflite = rows[("lifting_fp32.onnx", 1)], rows[("lifting_fp32.tflite", 1)]
    assert onnx["runner"] == "edgecap_runner" and onnx["runs"] >= 6 and onnx["p50_ms"] > 0
    assert onnx["percentiles"] == "per-iteration times"
    # The recorded benchmark_model transcript has avg/min/max/std only: no percentile is invented.
    assert tflite["runner"] == "benchmark_model" and tflite["p50_ms"] is None and tflite["mean_ms"] > 0
    assert "avg/min/max/std only" in tflite["percentiles"]
    for r in report["rows"]:
        assert len(r["thermal"]) == 2 and r["thermal"][0]["before"]["hottest_c"] is not None
        assert r["thermal"][0]["after"]["clusters"][-1]["cur_mhz"] == 3000
    calls = runner_calls(device)
    assert all(" taskset f0 " in f" {c.split(' ', 1)[1]}" for c in calls)  # pinned to the big cores
    # Interleaved: the first round visits every subject before the second round starts.
    models = [c.split("--model ")[1].split()[0] if "--model" in c else c.split("--graph=")[1].split()[0] for c in calls]
    assert len(models) == 2 * 12 and len(set(models[:12])) == 6 and models[:12] == models[12:]
    assert not any(device.root.glob("data/local/tmp/edgecap/*"))  # the working folder is removed
    table = format_table(report)
    assert "target: adb:SIM0001" in table and "benchmark_model prints avg/min/max/std only" in table


def test_keep_leaves_the_working_folder(phone, tmp_path):
    _, device = phone
    model, inputs = _linear(tmp_path)
    runners = runner_folder(tmp_path / "runners", "edgecap_runner")
    bench_files([model], threads=(1,), min_runs=2, min_seconds=0.0, warmup=0, rounds=1, target="adb",
                progress=False, target_options={"runner_dir": str(runners), "keep": True})
    kept = list(device.root.glob("data/local/tmp/edgecap/*/models/*/lin.onnx"))
    assert len(kept) == 1


def test_validate_on_the_phone_equals_the_host(phone, run, tmp_path):
    _, device = phone
    runners = runner_folder(tmp_path / "runners", "edgecap_runner")
    try:
        validate(run, parity_samples=8, target="adb", progress=False, target_options={"runner_dir": str(runners)})
    except EdgecapError as e:  # the tiny model may miss the int8 budget; parity with the host is the point
        assert "_int8." in str(e)
    report = json.loads((run / "validate.json").read_text())
    assert report["target"] == "adb:SIM0001"
    checked = [r for r in report["artifacts"] if r["status"] != "skipped"]
    assert {r["name"].split(".")[-1] for r in checked} == {"onnx", "tflite", "pte"}
    for r in checked:
        assert r["task"] == r["host_task"]  # the same file gives the same task metrics on the device
        assert r["device_vs_host"]["max_abs_diff"] == 0.0
    # Many samples per round trip: a few adb calls per artifact, not three per validation window.
    assert len(runner_calls(device)) <= 2 * len(checked)


def test_unplugging_mid_run_keeps_the_finished_rows(phone, run, tmp_path):
    server, device = phone
    runners = runner_folder(tmp_path / "runners", "edgecap_runner")
    device.unplug_after_runs = 8  # the first round of 6 artifacts, then 2 more
    done = edgecap_cli("bench", str(run), "--target", "adb", "--runner-dir", str(runners), "--threads", "1",
                       "--runs", "4", "-q", env_socket=server.socket_spec)
    assert done.returncode != 0
    message = done.stderr.strip().splitlines()[0]
    assert "device SIM0001 disconnected while running edgecap_runner on lifting_fp32.tflite" in message
    assert "round 2 of 5" in message and "Traceback" not in done.stderr
    report = json.loads((run / "bench.json").read_text())
    assert report["partial"] is True and "disconnected" in report["error"]
    assert len(report["rows"]) == 6 and all(r["partial"] for r in report["rows"])
    assert sorted(r["rounds_done"] for r in report["rows"]) == [1, 1, 1, 1, 2, 2]


def test_a_crashing_runner_is_reported_with_its_stderr(phone, tmp_path):
    _, device = phone
    model, inputs = _linear(tmp_path)
    runners = runner_folder(tmp_path / "runners", "edgecap_runner")
    device.fail_next["edgecap_runner"] = (139, "loading lin.onnx\nSegmentation fault (core dumped)\n")
    with pytest.raises(EdgecapError, match=r"edgecap_runner failed \(exit 139, killed by SIGSEGV\): loading lin.onnx \| Segm"):
        bench_files([model], threads=(1,), min_runs=2, min_seconds=0.0, warmup=0, rounds=1, target="adb",
                    progress=False, target_options={"runner_dir": str(runners)})


def test_full_disk_missing_runner_and_wrong_abi_each_say_so(phone, tmp_path):
    _, device = phone
    model, _ = _linear(tmp_path)
    options = dict(threads=(1,), min_runs=2, min_seconds=0.0, warmup=0, rounds=1, target="adb", progress=False)
    with pytest.raises(EdgecapError, match=r"no runner for onnx in .*: put onnxruntime_perf_test or edgecap_runner"):
        bench_files([model], **options, target_options={"runner_dir": str(runner_folder(tmp_path / "none"))})
    wrong = runner_folder(tmp_path / "x86", "edgecap_runner")
    (wrong / "edgecap_runner").write_bytes(b"\x7fELF\x02\x01\x01" + bytes(11) + (0x3E).to_bytes(2, "little"))
    with pytest.raises(EdgecapError, match=r"built for x86_64, but device SIM0001 runs arm64-v8a"):
        bench_files([model], **options, target_options={"runner_dir": str(wrong)})
    device.free_kb = 1000
    with pytest.raises(EdgecapError, match=r"device SIM0001 is full: .* MB free in /data/local/tmp"):
        bench_files([model], **options,
                    target_options={"runner_dir": str(runner_folder(tmp_path / "r", "edgecap_runner"))})


def test_a_push_that_runs_out_of_space_says_so(phone, tmp_path):
    _, device = phone
    runners = runner_folder(tmp_path / "runners", "edgecap_runner")
    device.free_kb = 0  # the push itself fails, as when df said nothing useful
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(200_000))
    with get_target("adb", tmp_path / "log", {"runner_dir": str(runners)}) as target:
        with pytest.raises(EdgecapError, match="is full while pushing"):
            target.adb.push([big], "/data/local/tmp/edgecap/x", "pushing big.bin")


def test_sustained_run_finds_throttling(phone, tmp_path):
    _, device = phone
    model, inputs = _linear(tmp_path, features=256)
    runners = runner_folder(tmp_path / "runners", "edgecap_runner")
    device.cool_tau_s, device.throttle_c, device.heat_c_per_s = 3.0, 45.0, 8.0
    device.set_temperature(52.0)  # hot at first: edgecap waits for it to cool
    with get_target("adb", tmp_path / "log", {"runner_dir": str(runners), "cool_to_c": 40.0}) as target:
        subject = {"kind": "artifact", "name": "lin.onnx", "path": str(model)}
        result = target.sustained(subject, inputs, seconds=6, threads=1, progress=False)
    assert result["cooldown"]["reason"] == "below 40 °C" and result["cooldown"]["waited_s"] > 0
    t = result["throttling"]
    assert t["throttled"] and 0 < t["onset_s"] < 6
    assert t["cap_after"] == pytest.approx(0.6)
    assert t["latency_after_ms"] > t["latency_before_ms"]  # the simulated core ran at 60% after the onset
    assert len(result["trace"]) >= 3 and all("hottest_c" in p and p["clusters"] for p in result["trace"])


def test_cooling_gives_up_when_the_phone_stops_cooling(phone, tmp_path):
    _, device = phone
    device.ambient_c = 47.0  # a warm room: it will never reach 40 °C
    device.set_temperature(47.0)
    with get_target("adb", tmp_path / "log", {"runner_dir": str(tmp_path), "cool_to_c": 40.0,
                                               "cool_timeout_s": 30.0}) as target:
        target.settle_s = 2.0
        result = target.cool_down(progress=False)
    assert result["reason"] == "stopped cooling" and result["end_c"] == pytest.approx(47.0)


def test_a_device_that_is_not_there(phone, tmp_path):
    with pytest.raises(EdgecapError, match=r"device NOPE is not connected \(adb devices lists: SIM0001\)"):
        get_target("adb:NOPE", tmp_path / "log", {"runner_dir": str(tmp_path)})


def _linear(folder, features: int = 8):
    import torch

    path = folder / "lin.onnx"
    with torch.no_grad():
        torch.onnx.export(torch.nn.Sequential(*[torch.nn.Linear(features, features) for _ in range(4)]).eval(),
                          (torch.randn(1, features),), str(path), dynamo=True, input_names=["x"],
                          output_names=["y"], verbose=False, external_data=False)
    np.savez(folder / "in.npz", x=np.ones((1, features), np.float32))
    return path, folder / "in.npz"



def test_sustained_bench_then_the_report_shows_device_figures_and_traces(phone, run, tmp_path):
    from edgecap.stages.report import build_report

    server, device = phone
    device.throttle_c, device.heat_c_per_s, device.cool_tau_s = 36.0, 4.0, 2.0
    runners = runner_folder(tmp_path / "runners", "edgecap_runner")
    done = edgecap_cli("bench", str(run), "--target", "adb:SIM0001", "--runner-dir", str(runners), "--threads", "1",
                       "--runs", "4", "--sustained", "1.5", "--cool-to", "33", "-q", env_socket=server.socket_spec)
    assert done.returncode == 0, done.stderr
    assert "sustained lifting_fp32.onnx for 1.5 s at 1 thread(s) (edgecap_runner)" in done.stdout
    bench_json = json.loads((run / "bench.json").read_text())
    assert [s["name"] for s in bench_json["sustained"]] == [r["name"] for r in bench_json["rows"]]
    assert any(s["throttling"]["throttled"] for s in bench_json["sustained"])
    build_report(run)
    md = (run / "report.md").read_text()
    assert "target: adb:SIM0001" in md and "edgecap simulated device" in md
    assert (run / "report_sustained.png").stat().st_size > 10_000
    assert "report_sustained.png" in md and "sustained runs on adb:SIM0001" not in md  # the title is in the image


def test_the_runner_folder_comes_from_the_option_or_the_config(phone, tmp_path, monkeypatch):
    model, _ = _linear(tmp_path)
    runners = runner_folder(tmp_path / "from config", "edgecap_runner")
    config = tmp_path / "config.toml"
    monkeypatch.setenv("EDGECAP_CONFIG", str(config))
    with get_target("adb", tmp_path / "log") as target:
        with pytest.raises(EdgecapError, match="no runner folder for the phone: pass --runner-dir DIR"):
            target.unsupported({"path": str(model)})
    config.write_text(f'[adb]\nrunner_dir = "{runners}"\n')
    with get_target("adb", tmp_path / "log") as target:
        assert target.unsupported({"path": str(model)}) is None and target.runner_dir == str(runners)
    config.write_text("[adb\nrunner_dir = 3\n")
    with pytest.raises(EdgecapError, match=r"config.toml: not valid TOML"):
        get_target("adb", tmp_path / "log")


def test_the_runtimes_own_tools_come_first_for_timing(phone, tmp_path):
    _, device = phone
    model, _ = _linear(tmp_path)
    runners = runner_folder(tmp_path / "runners", "onnxruntime_perf_test", "edgecap_runner")
    report = bench_files([model], threads=(2,), min_runs=4, min_seconds=0.0, warmup=0, rounds=2, target="adb",
                         progress=False, target_options={"runner_dir": str(runners)})
    row = report["rows"][0]
    assert row["runner"] == "onnxruntime_perf_test" and row["percentiles"] == "per-iteration times"
    call = runner_calls(device)[0]
    assert "onnxruntime_perf_test -I -m times -r 2 -x 2 -s -v" in call and call.endswith("/lin.onnx")
    # The recorded transcript's per-iteration times, twice (two rounds): their median, not a guess.
    from edgecap.targets.adb.tools import TOOLS

    recorded = TOOLS["onnxruntime_perf_test"].parse(_recorded("onnxruntime_perf_test_verbose.txt"))
    assert row["runs"] == 2 * len(recorded.times_ms)
    assert row["p50_ms"] == pytest.approx(float(np.median(recorded.times_ms)))


def _recorded(name):
    from tests.targets.adb.sim.standins import FIXTURES

    return "".join(ln for ln in (FIXTURES / name).read_text().splitlines(keepends=True) if not ln.startswith("# "))


def test_op_profiles_are_pulled_and_summed_per_operator(phone, tmp_path):
    model, _ = _linear(tmp_path)
    runners = runner_folder(tmp_path / "runners", "onnxruntime_perf_test")
    report = bench_files([model], threads=(1,), min_runs=2, min_seconds=0.0, warmup=0, rounds=1, target="adb",
                         progress=False,
                         target_options={"runner_dir": str(runners), "profile_dir": str(tmp_path / "p")})
    profile = report["rows"][0]["op_profile"]
    assert profile["file"].endswith("_2026-12-06_12-00-00.json") and (tmp_path / "p").is_dir()
    assert profile["ops"][0]["op"] == "Conv" and abs(sum(r["percent"] for r in profile["ops"]) - 100) < 0.1
    assert "op profile: Conv" in format_table(report)


def test_a_runner_that_prints_not_found_is_not_an_unplugged_phone(phone, tmp_path):
    from edgecap.targets.adb.client import DeviceGone

    _, device = phone
    model, _ = _linear(tmp_path)
    device.fail_next["onnxruntime_perf_test"] = (255, "Load model failed: file not found\n")
    runners = runner_folder(tmp_path / "runners", "onnxruntime_perf_test")
    with pytest.raises(EdgecapError, match=r"onnxruntime_perf_test failed \(exit 255\): Load model failed") as e:
        bench_files([model], threads=(1,), min_runs=2, min_seconds=0.0, warmup=0, rounds=1, target="adb",
                    progress=False, target_options={"runner_dir": str(runners)})
    assert not isinstance(e.value, DeviceGone)


def test_a_failing_profiler_keeps_the_timings(phone, tmp_path):
    _, device = phone
    model, _ = _linear(tmp_path)
    runners = runner_folder(tmp_path / "runners", "onnxruntime_perf_test")
    calls, real_exec = [], device._exec

    def profiling_run_fails(argv, cpus):  # like a tool built without the profiler's flag
        calls.append(argv)
        return (1, "", "Unknown command line flag 'p'\n") if "-p" in argv else real_exec(argv, cpus)

    device._exec = profiling_run_fails
    report = bench_files([model], threads=(1,), min_runs=2, min_seconds=0.0, warmup=0, rounds=1, target="adb",
                         progress=False, target_options={"runner_dir": str(runners), "profile_dir": str(tmp_path / "p")})
    row = report["rows"][0]
    assert len(calls) == 2 and row["p50_ms"] > 0 and "Unknown command line flag" in row["op_profile"]["error"]


def test_onnx_external_data_goes_along(phone, tmp_path):
    import torch

    _, device = phone
    path = tmp_path / "big.onnx"
    with torch.no_grad():  # weights large enough for the exporter to put them beside the graph
        torch.onnx.export(torch.nn.Linear(1024, 1024).eval(), (torch.randn(1, 1024),), str(path), dynamo=True,
                          input_names=["x"], output_names=["y"], external_data=True)
    assert any(p.name != "big.onnx" for p in tmp_path.iterdir() if p.name.startswith("big.onnx"))
    runners = runner_folder(tmp_path / "runners", "edgecap_runner")
    report = bench_files([path], threads=(1,), min_runs=2, min_seconds=0.0, warmup=0, rounds=1, target="adb",
                         progress=False, target_options={"runner_dir": str(runners)})
    assert report["rows"][0]["runs"] >= 2


def test_a_tools_own_percentiles_are_used_from_one_round_and_never_pooled(phone, tmp_path):
    _, device = phone
    device.recorded["benchmark_model"] = "benchmark_model_litert.txt"  # LiteRT prints median and p95
    path = tmp_path / "m.tflite"
    path.write_bytes(b"TFL3")  # never opened on the host: the recorded run stands in for the tool
    runners = runner_folder(tmp_path / "runners", "benchmark_model")
    target = get_target("adb", tmp_path / "log", {"runner_dir": str(runners)})
    inputs = tmp_path / "in.npz"
    np.savez(inputs, x=np.ones((1, 8), np.float32))
    subject = {"kind": "artifact", "name": "m.tflite", "path": str(path), "input_names": ["x"]}
    options = [BenchOptions(threads=1, min_runs=2, min_seconds=0.0, warmup=0, rounds=r) for r in (1, 2)]
    with target:
        one = target.measure([subject], inputs, [options[0]], progress=False)[0]
        two = target.measure([subject], inputs, [options[1]], progress=False)[0]
    assert one["percentiles"] == "printed by benchmark_model" and one["p50_ms"] > 0 and one["p99_ms"] is None
    assert two["p50_ms"] is None and "not pooled" in two["percentiles"] and len(two["round_stats"]) == 2
