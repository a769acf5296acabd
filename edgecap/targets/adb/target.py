"""An Android phone over adb as a target: latency, thermal traces and outputs for parity.

A session has one working folder on the device, /data/local/tmp/edgecap/<id>/ with bin/ (the
runners and their libraries), models/<n>/, inputs/ (bench) and io/ (validation batches);
`close` removes it unless `keep`.

Runners are the user's (no runtime's Android binaries can be fetched or built here): the
runtimes' own benchmark tools, and edgecap's runner (runners/edgecap_runner), the one that
writes outputs. They run pinned to the big cores with `taskset`. Subjects take turns round by
round (A B A B), so heat builds up evenly instead of favouring whoever runs first; the CPU
frequencies, the hottest thermal zone and the thermal status are sampled before and after
every run.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import uuid
import weakref
from pathlib import Path

import numpy as np

from edgecap import EdgecapError
from edgecap.core.console import progress as progress_bar
from edgecap.core.io import load_arrays
from edgecap.core.runner import Runner, RunnerUnavailable
from edgecap.targets.adb.client import Adb, AdbError, DeviceGone, device_command, exit_text, state_hint
from edgecap.targets.adb.device import elf_abi, parse_df_free_bytes, read_facts, sample_state
from edgecap.targets.adb.tools import TOOLS, Tool, ToolResult, edgecap_runner_samples_args, merge
from edgecap.targets.base import BenchOptions, Target, TargetInterrupted

ROOT = "/data/local/tmp/edgecap"
SUFFIX_FORMAT = {".onnx": "onnx", ".tflite": "tflite", ".pte": "executorch"}
OWN_RUNNER = "edgecap_runner"
CONFIG = Path("~/.config/edgecap/config.toml")


def runner_dir_from_config() -> str | None:
    """`[adb] runner_dir` of the user's config ($EDGECAP_CONFIG, else ~/.config/edgecap/config.toml)."""
    import tomllib

    path = Path(os.environ.get("EDGECAP_CONFIG", CONFIG)).expanduser()
    if not path.exists():
        return None
    try:
        config = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise EdgecapError(f"{path}: not valid TOML ({e})") from None
    value = config.get("adb", {}).get("runner_dir")
    if value is not None and not isinstance(value, str):
        raise EdgecapError(f"{path}: [adb] runner_dir must be a string, got {value!r}")
    return value


def pick_serial(adb: Adb, wanted: str | None) -> str:
    devices = adb.devices()
    ready = [d["serial"] for d in devices if d["state"] == "device"]
    if wanted:
        state = next((d["state"] for d in devices if d["serial"] == wanted), None)
        if state is None:
            raise AdbError(f"device {wanted} is not connected (adb devices lists: {', '.join(ready) or 'none'})")
        if state != "device":
            raise AdbError(f"device {wanted} is {state}: {state_hint(state)}")
        return wanted
    if not ready and devices:
        d = devices[0]
        raise AdbError(f"device {d['serial']} is {d['state']}: {state_hint(d['state'])}")
    if not ready:
        raise AdbError("no Android device connected: plug one in with USB debugging on (`adb devices` lists none)")
    if len(ready) > 1:
        raise AdbError(f"several devices connected ({', '.join(ready)}): pick one with --target adb:SERIAL")
    return ready[0]


class AdbTarget(Target):
    name = "adb"

    def __init__(self, spec: str = "adb", log_path: Path | None = None, options: dict | None = None):
        options = dict(options or {})
        self.runner_dir = options.pop("runner_dir", None) or runner_dir_from_config()
        self.forced_runner = options.pop("runner", None)
        self.keep = bool(options.pop("keep", False))
        self.profile_dir = options.pop("profile_dir", None)  # where op profiles go, if wanted
        self.cool_to_c = float(options.pop("cool_to_c", 40.0))
        self.cool_timeout_s = float(options.pop("cool_timeout_s", 180.0))
        self.settle_s = 15.0  # cooling by under 0.5 °C over this long counts as no longer cooling
        super().__init__(spec, log_path, options)
        self.adb = Adb()
        wanted = spec.split(":", 1)[1] if ":" in spec else os.environ.get("ANDROID_SERIAL")
        self.adb.serial = pick_serial(self.adb, wanted or None)
        self.name = f"adb:{self.adb.serial}"
        self.work = f"{ROOT}/{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
        self._facts: dict | None = None
        self._pushed: dict[str, str] = {}  # local path -> device path
        self._made = False
        self._model_folders = 0
        self._scratch = Path(tempfile.mkdtemp(prefix="edgecap-adb-"))  # host side: inputs as .npy
        # removed by close(), or when the target is collected or Python exits if nobody closed it
        self._remove_scratch = weakref.finalize(self, shutil.rmtree, self._scratch, True)

    def next_model_folder(self) -> int:
        """A fresh models/<n>/ folder on the device: two artifacts may share a file name."""
        self._model_folders += 1
        return self._model_folders

    # --- device --------------------------------------------------------------------------------
    def device_facts(self) -> dict:
        if self._facts is None:
            self._facts = read_facts(self.adb)
        facts = dict(self._facts)
        facts["state"] = sample_state(self.adb, "reading the CPU frequencies and temperatures")
        return facts

    def _mask(self) -> str | None:
        """The big cores' taskset mask; None where the clusters could not be read (no pinning)."""
        if self._facts is None:
            self._facts = read_facts(self.adb)
        return self._facts["big_core_mask"] or None

    # --- runners -------------------------------------------------------------------------------
    def _runner_folder(self) -> Path:
        if not self.runner_dir:
            raise EdgecapError("no runner folder for the phone: pass --runner-dir DIR (or set [adb] runner_dir in "
                               "~/.config/edgecap/config.toml) holding benchmark_model, onnxruntime_perf_test, "
                               "executor_runner or edgecap_runner built for the phone")
        folder = Path(self.runner_dir).expanduser()
        if not folder.is_dir():
            raise EdgecapError(f"runner folder {folder} does not exist")
        return folder

    def _tool_for(self, fmt: str, need_outputs: bool) -> Tool | str:
        """The runner for an artifact format, or why there is none. For timing, the runtime's own
        benchmark tool comes first; for outputs only edgecap_runner will do."""
        folder = self._runner_folder()
        names = [self.forced_runner] if self.forced_runner else \
            [n for n, t in TOOLS.items() if fmt in t.formats and n != OWN_RUNNER] + [OWN_RUNNER]
        for name in names:
            tool = TOOLS.get(name)
            if tool and fmt in tool.formats and (tool.writes_outputs or not need_outputs) and (folder / name).is_file():
                return tool
        wanted = [n for n in names if n in TOOLS and fmt in TOOLS[n].formats
                  and (TOOLS[n].writes_outputs or not need_outputs)]
        return (f"no runner for {fmt} in {folder}: put {' or '.join(wanted) or 'a runner'} there, built for the "
                f"phone ({'outputs for parity come only from edgecap_runner; ' if need_outputs else ''}"
                "see runners/edgecap_runner/README.md)")

    def unsupported(self, subject: dict) -> str | None:
        path = Path(subject["path"])
        if path.is_dir():
            return "a multi-part artifact runs through the family's app between its parts; bench each part file " \
                   "with --artifact"
        fmt = SUFFIX_FORMAT.get(path.suffix)
        if fmt is None:
            return f"{path.suffix} files do not run on Android"
        tool = self._tool_for(fmt, need_outputs=False)
        return tool if isinstance(tool, str) else None

    def _check_abi(self, path: Path) -> None:
        with open(path, "rb") as f:
            abi = elf_abi(f.read(20))
        device_abis = self._facts["abis"] or [self._facts["abi"]]
        if abi is not None and abi not in device_abis:
            raise AdbError(f"{path} is built for {abi}, but device {self.adb.serial} runs "
                           f"{', '.join(device_abis)}: build it for {device_abis[0]} (Android NDK, "
                           f"-DANDROID_ABI={device_abis[0]})")

    # --- pushing -------------------------------------------------------------------------------
    def _push(self, files: list[tuple[Path, str]], step: str) -> None:
        """Push (local file, device folder) pairs not pushed yet, after checking the space."""
        files = [(p, d) for p, d in files if str(p) not in self._pushed]
        if not files:
            return
        self.adb.shell(device_command("mkdir", "-p", *(f"{self.work}/{d}" for d in dict.fromkeys(d for _, d in files))),
                       "creating the working folder")
        self._made = True
        need = sum(p.stat().st_size for p, _ in files)
        free = parse_df_free_bytes(self.adb.shell(device_command("df", "-k", ROOT), "checking the free space",
                                                  check=False)[1])
        if free is not None and free < need * 1.1 + (16 << 20):
            raise AdbError(f"device {self.adb.serial} is full: {free / 1e6:.0f} MB free in /data/local/tmp, "
                           f"{need / 1e6:.0f} MB to push ({', '.join(p.name for p, _ in files[:3])}...): "
                           "free space on the phone")
        for folder in dict.fromkeys(d for _, d in files):
            batch = [p for p, d in files if d == folder]
            self.adb.push(batch, f"{self.work}/{folder}", f"{step} ({', '.join(p.name for p in batch)})")
            for p in batch:
                self._pushed[str(p)] = f"{self.work}/{folder}/{p.name}"

    def _push_tool(self, tool: Tool) -> str:
        folder = self._runner_folder()
        exe = folder / tool.name
        libraries = sorted(folder.glob("*.so*"))
        self.device_facts()
        for p in [exe, *libraries]:
            self._check_abi(p)
        fresh = str(exe) not in self._pushed
        self._push([(p, "bin") for p in [exe, *libraries]], "pushing the runner")
        if fresh:
            self.adb.shell(device_command("chmod", "755", f"{self.work}/bin/{tool.name}"),
                           "making the runner executable")
        return f"{self.work}/bin/{tool.name}"

    def _push_model(self, path: Path, index: int) -> str:
        extra = _external_data(path) if path.suffix == ".onnx" else []
        self._push([(p, f"models/{index}") for p in [path, *extra]], f"pushing {path.name}")
        return self._pushed[str(path)]

    def pinned(self, exe: str, *args: str) -> str:
        """The command line running `exe` on the big cores, with the runner folder's libraries."""
        mask = self._mask()
        return device_command(*(["taskset", mask] if mask else []), exe, *args,
                              env={"LD_LIBRARY_PATH": f"{self.work}/bin"})

    def _command(self, tool: Tool, exe: str, model: str, threads: int, warmup: int, iterations: int,
                 seconds: float, inputs: list[str], output_dir: str | None = None) -> str:
        return self.pinned(exe, *tool.args(model, threads, warmup, iterations, seconds, inputs, output_dir))

    def _run_tool(self, tool: Tool, command: str, step: str, warmup: int = 0) -> ToolResult:
        code, out, err = self.adb.shell(command, step, check=False)
        if self.log_path:  # the runner's whole output, for the user to read
            Path(self.log_path).parent.mkdir(parents=True, exist_ok=True)
            with open(self.log_path, "a") as log:
                log.write(f"$ adb -s {self.adb.serial} shell {command}\n{out}{err}\n")
        try:
            if code != 0:
                tail = " | ".join([ln for ln in (err or out).splitlines() if ln.strip()][-4:])
                raise AdbError(f"{step}: {tool.name} failed ({exit_text(code)}): {tail or 'no output'}")
            result = tool.parse(out, err)
            if tool.warmup_in_times and warmup and len(result.times_ms) > warmup:
                result.times_ms = result.times_ms[warmup:]
            return result
        except EdgecapError:
            # A cut connection can look like a run that printed nothing: ask whether the device is there.
            if not self.adb.present():
                raise DeviceGone(f"device {self.adb.serial} disconnected while {step}") from None
            raise

    # --- latency ------------------------------------------------------------------------------
    def _prepare(self, subjects: list[dict], inputs: Path) -> list[dict]:
        arrays = load_arrays(inputs, "bench inputs")
        files = []
        for name, value in arrays.items():
            np.save(self._scratch / f"{name}.npy", np.ascontiguousarray(value))
            files.append((self._scratch / f"{name}.npy", "inputs"))
        self._push(files, "pushing the inputs")
        plans = []
        for s in subjects:
            path = Path(s["path"])
            tool = self._tool_for(SUFFIX_FORMAT[path.suffix], need_outputs=False)
            if isinstance(tool, str):
                raise EdgecapError(tool)
            names = s.get("input_names") or s.get("input_order") or list(arrays)
            missing = [n for n in names if n not in arrays]
            if missing:
                raise EdgecapError(f"bench inputs {inputs} lack {missing} for {s['name']}")
            plans.append({"subject": s, "tool": tool, "exe": self._push_tool(tool),
                          "model": self._push_model(path, self.next_model_folder()),
                          "inputs": [f"{self.work}/inputs/{n}.npy" for n in names]})
        return plans

    def measure(self, subjects: list[dict], inputs: Path, options: list[BenchOptions],
                progress: bool = True) -> list[dict]:
        plans = self._prepare(subjects, inputs)
        rounds = max(o.rounds for o in options)
        cooldown = self.cool_down(progress)
        done: list[list[tuple[ToolResult, dict, dict]]] = [[] for _ in plans]
        bar = progress_bar(total=rounds * len(plans), desc=f"bench on {self.adb.serial} (interleaved)",
                           disable=not progress, leave=False)
        try:
            for r in range(rounds):
                for plan, opt, mine in zip(plans, options, done):
                    name, tool = plan["subject"]["name"], plan["tool"]
                    step = f"running {tool.name} on {name} at {opt.threads} thread(s), round {r + 1} of {rounds}"
                    before = sample_state(self.adb, f"sampling the device before {name}, round {r + 1}")
                    command = self._command(tool, plan["exe"], plan["model"], opt.threads, opt.warmup,
                                            -(-opt.min_runs // rounds), opt.min_seconds / rounds, plan["inputs"])
                    result = self._run_tool(tool, command, step, opt.warmup)
                    after = sample_state(self.adb, f"sampling the device after {name}, round {r + 1}")
                    mine.append((result, before, after))
                    bar.update(1)
        except EdgecapError as e:
            partial = [_summary(p, o, m, cooldown, partial=True) if m else None
                       for p, o, m in zip(plans, options, done)]
            raise TargetInterrupted(str(e), partial) from None
        finally:
            bar.close()
        rows = [_summary(p, o, m, cooldown) for p, o, m in zip(plans, options, done)]
        big = len(self._facts["big_cores"]) if self._facts else 0
        for opt, row in zip(options, rows):
            if big and opt.threads > big:
                row["notes"].append(f"{opt.threads} threads on {big} big cores: threads share cores")
            if not self._mask():
                row["notes"].append("not pinned: the CPU clusters could not be read")
        if self.profile_dir:  # after the timing: profiling perturbs the times it would record
            for plan, opt, row in zip(plans, options, rows):
                try:
                    row["op_profile"] = self._op_profile(plan, opt)
                except DeviceGone as e:
                    raise TargetInterrupted(str(e), rows) from None
                except EdgecapError as e:  # an older tool without the flags, a garbled file: the timings stand
                    row["op_profile"] = {"error": str(e)}
        return rows

    PROFILE_SUFFIX = {"benchmark_model": ".csv", "onnxruntime_perf_test": "", "executor_runner": ".etdump"}

    def _op_profile(self, plan: dict, opt: BenchOptions) -> dict:
        """One more run with the tool's op profiler on; the profile pulled into `profile_dir` and
        summed per operator type. edgecap_runner has no profiler: that row says so."""
        from edgecap.targets.adb.profiles import op_table

        tool, name = plan["tool"], plan["subject"]["name"]
        if tool.name not in self.PROFILE_SUFFIX:
            return {"error": f"{tool.name} has no op profiler: add the runtime's own tool to the runner folder"}
        remote = f"{self.work}/out/{Path(name).stem}-{opt.threads}t{self.PROFILE_SUFFIX[tool.name]}"
        args = tool.args(plan["model"], opt.threads, 1, 10, 0.0, plan["inputs"], None, remote)
        command = self.pinned(plan["exe"], *args)
        self.adb.shell(device_command("mkdir", "-p", f"{self.work}/out"), "creating the profile folder")
        self._run_tool(tool, command, f"profiling {name} with {tool.name}")
        wanted = tool.profile_glob(remote)
        if wanted != remote:  # a prefix the tool completes (ORT adds the date and time): find the file
            pattern = device_command(remote) + wanted[len(remote):]  # the name quoted, the glob left to the shell
            _, listing, _ = self.adb.shell(f"ls {pattern}", f"finding the profile of {name}", check=False)
            found = [ln.strip() for ln in listing.splitlines() if ln.strip().startswith(remote)]
            if not found:
                return {"error": f"{tool.name} wrote no profile {wanted}"}
            remote = found[-1]
        folder = Path(self.profile_dir)
        folder.mkdir(parents=True, exist_ok=True)
        self.adb.pull([remote], folder, f"pulling the op profile of {name}")
        local = folder / Path(remote).name
        return {"file": str(local), "ops": op_table(local)}

    # --- heat ---------------------------------------------------------------------------------
    def cool_down(self, progress: bool = True) -> dict:
        """Wait until the hottest zone is below `cool_to_c`, or has stopped cooling (under 0.5 °C
        in `settle_s`), or `cool_timeout_s` passed. Returns what happened."""
        started = time.monotonic()
        first = last = sample_state(self.adb, "waiting for the device to cool")["hottest_c"]
        history = [(0.0, first)]
        reason = "no temperature readable"
        while last is not None:
            if last <= self.cool_to_c:
                reason = f"below {self.cool_to_c:g} °C"
                break
            waited = time.monotonic() - started
            older = [t for s, t in history if s <= waited - self.settle_s]
            if older and older[-1] - last < 0.5:
                reason = "stopped cooling"
                break
            if waited >= self.cool_timeout_s:
                reason = f"timeout after {self.cool_timeout_s:g} s"
                break
            time.sleep(min(2.0, max(self.cool_timeout_s - waited, 0.05)))
            last = sample_state(self.adb, "waiting for the device to cool")["hottest_c"]
            history.append((time.monotonic() - started, last))
        return {"start_c": first, "end_c": last, "waited_s": round(time.monotonic() - started, 1), "reason": reason}

    def sustained(self, subject: dict, inputs: Path, seconds: float, threads: int, progress: bool = True) -> dict:
        """Run one artifact for `seconds` in chunks of about 2 s, sampling between chunks; find
        where the big cores' frequency cap first drops (throttling) and compare latency before and after."""
        plan = self._prepare([subject], inputs)[0]
        cooldown = self.cool_down(progress)
        tool, trace, chunk = plan["tool"], [], 5
        started = time.monotonic()
        bar = progress_bar(total=int(seconds), desc=f"sustained {subject['name']}", disable=not progress, leave=False)
        while time.monotonic() - started < seconds:
            step = f"running {tool.name} on {subject['name']} (sustained, {time.monotonic() - started:.0f} s in)"
            warmup = 0 if trace else 1
            command = self._command(tool, plan["exe"], plan["model"], threads, warmup, chunk, 0.0, plan["inputs"])
            result = self._run_tool(tool, command, step, warmup)
            state = sample_state(self.adb, f"sampling the device during {subject['name']}")
            latency = _center(result)
            trace.append({"t_s": round(time.monotonic() - started, 2), "latency_ms": latency, **state})
            if latency:
                chunk = max(1, min(1000, int(2000 / latency)))
            bar.update(min(int(time.monotonic() - started), int(seconds)) - bar.n)
        bar.close()
        return {"name": subject["name"], "threads": threads, "runner": tool.name, "seconds": seconds,
                "cooldown": cooldown, "trace": trace, "throttling": throttling(trace)}

    # --- outputs, for validate ----------------------------------------------------------------
    def runner(self, path: Path, family=None, threads: int = 1, input_names=None, output_names=None) -> Runner:
        path = Path(path)
        why = "a multi-part artifact runs through the family's app between its parts" if path.is_dir() else \
            (None if path.suffix in SUFFIX_FORMAT else f"{path.suffix} files do not run on Android")
        tool = why or self._tool_for(SUFFIX_FORMAT[path.suffix], need_outputs=True)
        if isinstance(tool, str):
            raise RunnerUnavailable(tool)
        return DeviceRunner(self, tool, path, threads, family, input_names, output_names)

    def close(self) -> None:
        self._remove_scratch()
        if self._made and not self.keep:
            try:
                self.adb.shell(device_command("rm", "-rf", self.work), "removing the working folder", timeout=60)
            except AdbError:
                pass  # the device is gone: nothing to clean
        self._made = False


class DeviceRunner(Runner):
    """One artifact run on the phone by edgecap_runner: inputs pushed and outputs pulled as .npy,
    many samples per round trip (`run_many`), so a validation set costs a few adb calls, not
    three per sample."""

    chunk = 256  # samples per round trip: bounds the space taken on the device

    def __init__(self, target: AdbTarget, tool: Tool, path: Path, threads: int, family, input_names, output_names):
        from edgecap.runs import open_artifact

        self.target, self.tool, self.threads, self.path = target, tool, threads, path
        self.host = open_artifact(path, family, threads, input_names, output_names, trusted=True)  # names, metadata
        self.format, self.input_names = self.host.format, self.host.input_names
        self.output_names = self.host.output_names
        self.input_shapes = self.host.input_shapes
        self.exe = target._push_tool(tool)
        self.model = target._push_model(path, target.next_model_folder())
        self.io = f"{target.work}/io"
        self._expected: dict | None = None  # output shapes, checked once against the host

    def run(self, inputs):
        return self.run_many([inputs])[0]

    def run_many(self, samples: list) -> list:
        out = []
        for start in range(0, len(samples), self.chunk):
            out += self._round_trip(samples[start:start + self.chunk])
        return out

    def _round_trip(self, samples: list) -> list:
        adb, what = self.target.adb, f"{self.path.name} on {self.target.adb.serial}"
        with tempfile.TemporaryDirectory(prefix="edgecap-adb-io-") as scratch:
            local = Path(scratch) / "batch"
            for k, inputs in enumerate(samples):
                (local / str(k)).mkdir(parents=True)
                for i, name in enumerate(self.input_names):
                    np.save(local / str(k) / f"in_{i}.npy", np.ascontiguousarray(inputs[name]))  # dtype kept
            remote = f"{self.io}/batch"
            adb.shell(device_command("rm", "-rf", remote) + " && " + device_command("mkdir", "-p", self.io),
                      f"preparing the inputs of {what}")
            adb.push([local], self.io, f"pushing {len(samples)} input(s) of {what}")
            args = edgecap_runner_samples_args(self.model, self.threads, 0, remote)
            result = self.target._run_tool(self.tool, self.target.pinned(self.exe, *args), f"running {what}")
            expected = len(samples) * len(self.output_names)
            if len(result.outputs) != expected:
                raise AdbError(f"{what}: edgecap_runner wrote {len(result.outputs)} outputs for {len(samples)} "
                               f"sample(s), expected {len(self.output_names)} each ({', '.join(self.output_names)})")
            pulled = Path(scratch) / "pulled"
            pulled.mkdir()
            # Only the outputs travel back: the inputs go first (the glob is left to the device's shell).
            adb.shell("rm -f " + device_command(remote) + "/*/in_*.npy", f"removing the inputs of {what}")
            adb.pull([remote], pulled, f"pulling the outputs of {what}")
            out = [self._outputs(pulled / "batch" / str(k), what) for k in range(len(samples))]
            adb.shell(device_command("rm", "-rf", remote), f"removing the outputs of {what}")
        if self._expected is None:  # the runner numbers outputs in the model's order: check it is the artifact's
            self._expected = {n: v.shape for n, v in self.host.run(samples[0]).items()}
            got = {n: v.shape for n, v in out[0].items()}
            if got != self._expected:
                raise AdbError(f"{what}: the runner's outputs have shapes {list(got.values())}, the artifact's "
                               f"{self.output_names} have {list(self._expected.values())}: output order differs")
        return out

    def _outputs(self, folder: Path, what: str) -> dict:
        try:
            return {name: np.load(folder / f"out_{i}.npy", allow_pickle=False) for i, name in enumerate(self.output_names)}
        except (OSError, ValueError) as e:
            raise AdbError(f"{what}: an output pulled from the device cannot be read ({e})") from None

    def metadata(self) -> dict:
        return self.host.metadata()


def _external_data(path: Path) -> list[Path]:
    """The files an ONNX model keeps its weights in (external data), which go along with it."""
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception:  # noqa: BLE001 - not ours to judge here: the runner will say what is wrong
        return []
    names = {e.value for t in model.graph.initializer for e in t.external_data if e.key == "location"}
    return [path.parent / n for n in sorted(names) if (path.parent / n).is_file()]


def _center(result: ToolResult) -> float | None:
    if result.times_ms:
        return float(np.median(result.times_ms))
    return result.stats.get("p50_ms") or result.stats.get("mean_ms")


def throttling(trace: list[dict], drop: float = 0.95) -> dict:
    """When the fastest cluster's frequency cap first falls under `drop` of where it started,
    and the median latency before and after. Without such a drop: not throttled."""
    def cap(point):
        caps = [c["cap_mhz"] / c["max_mhz"] for c in point.get("clusters", []) if c.get("cap_mhz") and c.get("max_mhz")]
        return caps[-1] if caps else None  # clusters are slowest first: the last is the fastest

    start = next((cap(p) for p in trace if cap(p) is not None), None)
    onset = next((i for i, p in enumerate(trace) if start and cap(p) is not None and cap(p) < drop * start), None)
    lat = [p["latency_ms"] for p in trace]
    summary = {"throttled": onset is not None, "onset_s": trace[onset]["t_s"] if onset is not None else None,
               "latency_start_ms": lat[0] if lat else None, "latency_end_ms": lat[-1] if lat else None}
    if onset is not None:
        before, after = [v for v in lat[:onset] if v], [v for v in lat[onset:] if v]
        summary.update(latency_before_ms=float(np.median(before)) if before else None,
                       latency_after_ms=float(np.median(after)) if after else None,
                       cap_after=cap(trace[-1]))
        if before and after:
            summary["slowdown"] = summary["latency_after_ms"] / summary["latency_before_ms"]
    return summary


def _summary(plan: dict, options: BenchOptions, done: list, cooldown: dict, partial: bool = False) -> dict:
    """One subject's row from its rounds: percentiles only from per-iteration times (or the tool's
    own, from a single round); a tool that prints only avg/min/max/std gets no percentiles."""
    tool = plan["tool"]
    results = [r for r, _, _ in done]
    merged = merge(results) if len(results) > 1 else results[0]
    row = {"runner": tool.name, "runtime": tool.runtime, "rounds_done": len(results),
           "init_ms": merged.init_ms, "peak_memory_mb": merged.peak_memory_mb, "notes": list(merged.notes)}
    if merged.times_ms:
        ms = np.array(merged.times_ms)
        row.update(p50_ms=float(np.percentile(ms, 50)), p90_ms=float(np.percentile(ms, 90)),
                   p99_ms=float(np.percentile(ms, 99)), mean_ms=float(ms.mean()), min_ms=float(ms.min()),
                   max_ms=float(ms.max()), std_ms=float(ms.std()), runs=len(ms), percentiles="per-iteration times")
    else:
        stats = merged.stats
        row.update({k: stats.get(k) for k in ("p50_ms", "p90_ms", "p99_ms")})
        row.update(mean_ms=stats.get("mean_ms"), min_ms=stats.get("min_ms"), max_ms=stats.get("max_ms"),
                   std_ms=stats.get("std_ms"), runs=int(stats.get("count", 0)))
        if stats.get("p50_ms"):
            row["percentiles"] = f"printed by {tool.name}"
        elif any(r.stats.get("p50_ms") for r in results):  # percentiles of separate runs cannot be pooled
            row["percentiles"] = f"not pooled: {tool.name} printed them per round (round_stats)"
            row["round_stats"] = [r.stats for r in results]
        else:
            row["percentiles"] = f"not reported: {tool.name} prints avg/min/max/std only"
    center = row["p50_ms"] or row["mean_ms"]
    row["fps"] = 1000 / center if center else None
    per_round = [_center(r) for r in results]
    row["round_p50_ms"] = per_round
    valid = [v for v in per_round if v]
    row["round_spread"] = (max(valid) - min(valid)) / center if len(valid) > 1 and center else None
    row["thermal"] = [{"round": i + 1, "before": b, "after": a} for i, (_, b, a) in enumerate(done)]
    row["cooldown"] = cooldown
    if partial:
        row["partial"] = True
    return row
