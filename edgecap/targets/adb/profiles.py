"""Per-operator tables from the op-level profiles the benchmark tools write on the device (see tools.py).

Every parser returns rows `{"op", "count", "total_ms", "percent"}` sorted by total_ms descending: `op` is the
operator type, `total_ms` the time one inference spends in operators of that type (averaged over the profiled
runs), `count` how many nodes of that type run in one inference, `percent` the share of the table's total. The
formats, from each tool's source:

- benchmark_model --op_profiling_output_mode=csv (google-ai-edge/LiteRT tflite/profiling/profile_summary_formatter.cc
  ProfileSummaryCSVFormatter / HandleOutput; tensorflow/tensorflow xla/tsl/util/stats_calculator.cc, formerly
  tensorflow/core/util/stats_calculator.cc, StatsCalculator with format_as_csv): "Profiling Info for Benchmark
  Initialization:" then "Operator-wise Profiling Info for Regular Benchmark Runs:", each with "Run Order" and
  "Top by Computation Time" tables (`node type, first, avg_ms, %, cdf%, mem KB, times called, name`; older
  TensorFlow has a `start` column after `node type`), "Number of nodes executed: N", the "Summary by node type"
  table (`node type, count, avg_ms, avg %, cdf %, mem KB, times called`, avg_ms per run) and a `Timings
  (microseconds): ...` summary. With subgraphs each graph has its own tables ("Primary graph (name: ..)
  profile:" first) and a delegate adds "Delegate internal:". Read: the regular runs' first (primary graph)
  "Summary by node type", so a delegated partition is one row of its delegate node type.
- onnxruntime_perf_test -p (microsoft/onnxruntime onnxruntime/core/common/profiler.cc, events from
  core/framework/sequential_executor.cc): a JSON array of Chrome-trace events {"cat": "Session"|"Node", "name",
  "dur" (us), "ts", "ph": "X", "args"}; each node execution is a "Node" event "<node>_kernel_time" whose args hold
  "op_name" and "provider" (beside "_fence_before"/"_fence_after" events, not read), each inference a "Session"
  event "model_run" (the perf test's warm-up run included).
- executor_runner --etdump_path (pytorch/executorch devtools/etdump/etdump_schema_flatcc.fbs, a size-prefixed
  flatbuffer with file identifier "ED00"): read with executorch.devtools.Inspector (no ETRecord needed). Portable
  kernels log "native_call_<op>.<overload>" inside each "OPERATOR_CALL"; delegates (XNNPACK) log their own ops
  ("Convolution (NHWC, F32) IGEMM #1") inside each "DELEGATE_CALL"; "Method::execute" is one inference.
"""

from __future__ import annotations

import json
import math
import re
import warnings
from pathlib import Path

from edgecap import EdgecapError


def _error(path: Path, what: str) -> EdgecapError:
    return EdgecapError(f"op profile {path}: {what}")


def _rows(totals: dict[str, float], counts: dict[str, int], percents: dict[str, float] | None = None) -> list[dict]:
    """The table, sorted by total_ms descending (ties keep the order the ops were first seen)."""
    whole = sum(totals.values())
    rows = [{"op": op, "count": counts[op], "total_ms": ms,
             "percent": percents[op] if percents is not None else (100.0 * ms / whole if whole > 0 else 0.0)}
            for op, ms in totals.items()]
    return sorted(rows, key=lambda r: -r["total_ms"])


# ---- benchmark_model (LiteRT / TFLite) ------------------------------------------------------------------------

_TFLITE_RUNS = "Operator-wise Profiling Info for Regular Benchmark Runs:"
_TFLITE_BY_TYPE = re.compile(r"^=+ Summary by node type =+$")


def _tflite_number(path: Path, text: str, line: str) -> float:
    try:
        value = float(text.strip().rstrip("%"))
    except ValueError:
        raise _error(path, f"not a number {text.strip()!r} in 'Summary by node type' line {line.strip()!r}") from None
    if not math.isfinite(value):
        raise _error(path, f"{text.strip()!r} in 'Summary by node type' line {line.strip()!r}")
    return value


def tflite_op_table(path: Path) -> list[dict]:
    """benchmark_model's CSV op profile: its regular runs' "Summary by node type" (primary graph)."""
    path = Path(path)
    lines = _read_text(path).splitlines()
    start = next((i for i, line in enumerate(lines) if line.strip() == _TFLITE_RUNS), None)
    # Without the regular-runs heading (a profile of initialization only, or a bare StatsCalculator dump) the
    # first summary is the only candidate; with it, the one after it.
    at = next((i for i in range(start or 0, len(lines)) if _TFLITE_BY_TYPE.match(lines[i].strip())), None)
    if at is None:
        where = f"after '{_TFLITE_RUNS}'" if start is not None else "(nor the regular runs' heading)"
        raise _error(path, f"no 'Summary by node type' section {where}; is it benchmark_model's "
                           "--op_profiling_output_mode=csv output?")
    header = [h.strip() for h in lines[at + 1].split(",")] if at + 1 < len(lines) else []
    need = ("node type", "count", "avg_ms", "avg %")
    if any(h not in header for h in need):
        raise _error(path, f"'Summary by node type' header {', '.join(header)!r} lacks {', '.join(need)}")
    col = {h: header.index(h) for h in need}
    totals, counts, percents = {}, {}, {}
    for line in lines[at + 2:]:
        if not line.strip():
            break
        cells = line.split(",")
        if len(cells) != len(header):
            raise _error(path, f"'Summary by node type' line {line.strip()!r} has {len(cells)} fields, "
                               f"the header {len(header)}")
        op = cells[col["node type"]].strip()
        totals[op] = totals.get(op, 0.0) + _tflite_number(path, cells[col["avg_ms"]], line)
        counts[op] = counts.get(op, 0) + int(_tflite_number(path, cells[col["count"]], line))
        percents[op] = percents.get(op, 0.0) + _tflite_number(path, cells[col["avg %"]], line)
    if not totals:
        raise _error(path, "'Summary by node type' section has no rows")
    return _rows(totals, counts, percents)


# ---- onnxruntime_perf_test ------------------------------------------------------------------------------------


def ort_op_table(path: Path) -> list[dict]:
    """onnxruntime's JSON profile: "<node>_kernel_time" events summed by op_name, per model_run."""
    path = Path(path)
    text = _read_text(path)
    try:
        events = json.loads(text)
    except json.JSONDecodeError as e:
        hint = " (cut short: did the run end before the session wrote it?)" if text.rstrip()[-1:] != "]" else ""
        raise _error(path, f"not JSON: {e}{hint}") from None
    if isinstance(events, dict):  # a Chrome-trace object form, should a tool re-save it so
        events = events.get("traceEvents")
    if not isinstance(events, list):
        raise _error(path, "not a JSON array of trace events")
    totals: dict[str, float] = {}
    counts: dict[str, int] = {}
    per_node: dict[str, int] = {}
    runs = 0
    for i, e in enumerate(events):
        if not isinstance(e, dict):
            raise _error(path, f"event {i} is not a JSON object")
        if e.get("cat") == "Session" and e.get("name") == "model_run":
            runs += 1
        if e.get("cat") != "Node" or not str(e.get("name", "")).endswith("_kernel_time"):
            continue
        args = e.get("args") or {}
        dur = e.get("dur")
        if not isinstance(dur, (int, float)) or not isinstance(args, dict) or not args.get("op_name"):
            raise _error(path, f"node event {i} ({e.get('name')!r}) lacks a numeric 'dur' or args.op_name")
        op = str(args["op_name"])
        provider = str(args.get("provider") or "CPUExecutionProvider")
        if provider != "CPUExecutionProvider":
            op += f" ({provider.removesuffix('ExecutionProvider')})"
        totals[op] = totals.get(op, 0.0) + dur / 1e3
        counts[op] = counts.get(op, 0) + 1
        per_node[e["name"]] = per_node.get(e["name"], 0) + 1
    if not totals:
        raise _error(path, "no node events ('cat': 'Node', '<node>_kernel_time'): was the model run with profiling "
                           "on?")
    runs = runs or max(per_node.values())  # an old profile without model_run events: each node ran once a run
    return _rows({op: ms / runs for op, ms in totals.items()},
                 {op: max(1, round(n / runs)) for op, n in counts.items()})


# ---- executor_runner (ExecuTorch ETDump) ----------------------------------------------------------------------

_ET_WRAPPERS = {"OPERATOR_CALL", "DELEGATE_CALL"}


def _et_op(name: str, delegated: bool) -> str | None:
    """The operator type of an ETDump event, or None for the runtime's own events."""
    if delegated:
        return re.sub(r" #\d+$", "", name)  # XNNPACK numbers each instance of an op
    if name.startswith("native_call_"):
        return name[len("native_call_"):].rsplit(".", 1)[0]  # convolution.out -> convolution
    return None


def executorch_op_table(path: Path) -> list[dict]:
    """An ETDump read with executorch.devtools.Inspector: portable kernels' native_call_* events and delegates'
    own events by type; a bare OPERATOR_CALL / DELEGATE_CALL row where nothing inside them was logged."""
    path = Path(path)
    head = _read_bytes(path)[:12]
    if len(head) < 12 or head[8:12] != b"ED00":
        raise _error(path, "not an ETDump (no 'ED00' flatbuffer identifier)")
    try:
        from executorch.devtools import Inspector
    except ImportError as e:
        raise _error(path, f"reading an ETDump needs the executorch package (executorch.devtools): {e}") from None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "Output Buffer not found": no tensor data, not needed here
            inspector = Inspector(etdump_path=str(path), etrecord=None)
    except Exception as e:  # noqa: BLE001 - flatc / Inspector failures come in many types
        raise _error(path, f"executorch Inspector could not read it: {type(e).__name__}: {e}") from None
    ops_ms: dict[str, float] = {}
    ops_n: dict[str, int] = {}
    wrap_ms: dict[str, float] = {}
    wrap_n: dict[str, int] = {}
    inner = {"OPERATOR_CALL": False, "DELEGATE_CALL": False}  # whether anything inside those was logged
    runs = 0
    for block in inspector.event_blocks:
        for event in block.events:
            raw = list(event.perf_data.raw) if event.perf_data is not None else []
            if event.name == "Method::execute":
                runs = max(runs, len(raw))
                continue
            if event.name in _ET_WRAPPERS:
                wrap_ms[event.name] = wrap_ms.get(event.name, 0.0) + sum(raw)
                wrap_n[event.name] = wrap_n.get(event.name, 0) + 1
                runs = max(runs, len(raw))
                continue
            op = _et_op(str(event.name), bool(event.is_delegated_op))
            if op is None or not raw:
                continue
            ops_ms[op] = ops_ms.get(op, 0.0) + sum(raw)
            ops_n[op] = ops_n.get(op, 0) + 1
            inner["DELEGATE_CALL" if event.is_delegated_op else "OPERATOR_CALL"] = True
            runs = max(runs, len(raw))
    for name, ms in wrap_ms.items():
        if not inner[name]:
            ops_ms[name], ops_n[name] = ms, wrap_n[name]
    if not ops_ms or runs == 0:
        raise _error(path, "no operator timings in the ETDump (was executor_runner built with the event tracer "
                           "and profiling on?)")
    return _rows({op: ms / runs for op, ms in ops_ms.items()}, ops_n)


# ---- dispatch and display -------------------------------------------------------------------------------------

_PARSERS = {".csv": tflite_op_table, ".json": ort_op_table, ".etdump": executorch_op_table,
            ".etdp": executorch_op_table}


def _read_bytes(path: Path) -> bytes:
    try:
        data = path.read_bytes()
    except OSError as e:
        raise _error(path, f"cannot read it: {e.strerror or e}") from None
    if not data:
        raise _error(path, "the file is empty")
    return data


def _read_text(path: Path) -> str:
    try:
        return _read_bytes(path).decode("utf-8")
    except UnicodeDecodeError as e:
        raise _error(path, f"not UTF-8 text ({e.reason} at byte {e.start})") from None


def op_table(path: Path) -> list[dict]:
    """The per-operator table of a pulled profile, by suffix: .csv benchmark_model, .json onnxruntime_perf_test,
    .etdump/.etdp executor_runner."""
    path = Path(path)
    parser = _PARSERS.get(path.suffix.lower())
    if parser is None:
        raise _error(path, f"unknown profile suffix {path.suffix!r} (expected one of {', '.join(_PARSERS)})")
    return parser(path)


def format_op_table(rows: list[dict], top: int = 10) -> str:
    """A small text table of the `top` rows, with a line for the rest."""
    shown = rows[:top] if top > 0 else rows
    width = max([len("op"), *(len(r["op"]) for r in shown)])
    lines = [f"{'op':<{width}}  {'count':>5}  {'total ms':>9}  {'%':>6}"]
    lines += [f"{r['op']:<{width}}  {r['count']:>5d}  {r['total_ms']:>9.3f}  {r['percent']:>6.2f}" for r in shown]
    rest = rows[len(shown):]
    if rest:
        label = f"({len(rest)} more)"
        lines.append(f"{label:<{width}}  {sum(r['count'] for r in rest):>5d}  "
                     f"{sum(r['total_ms'] for r in rest):>9.3f}  {sum(r['percent'] for r in rest):>6.2f}")
    return "\n".join(lines)
