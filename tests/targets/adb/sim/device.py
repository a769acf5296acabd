"""A simulated Android device behind the fake adb server (sim/server.py).

- Files: /data/local/tmp lives in a sandbox folder; writing elsewhere is refused, like on a
  phone without root. A free-space quota makes "No space left on device" testable.
- /sys: a fixture tree of cpufreq policies and thermal zones, computed from a small thermal
  model: the temperature climbs while a runner runs and relaxes towards ambient when idle; above
  `throttle_c` the big clusters' frequency cap drops. Tests change the values as they like.
- Shell: the handful of commands edgecap sends (getprop, grep -H, cat, mkdir -p, rm -rf,
  chmod, df -k, dumpsys thermalservice, taskset), joined by `;` or `&&`.
- Runners: a pushed file named like a known runner runs a Python stand-in (sim/standins.py):
  edgecap_runner runs the real model on the host; the runtimes' own tools print recorded output.

Nothing here is a phone: timings from it are the host's and never count as device latency.
"""

from __future__ import annotations

import fnmatch
import glob
import math
import os
import shlex
import socket
import stat
import threading
import time
from pathlib import Path

TMP = "/data/local/tmp"
CLUSTERS = [((0, 1, 2, 3), 1_800_000), ((4, 5, 6), 2_400_000), ((7,), 3_000_000)]  # (cpus, max kHz)
ELF_MACHINES = {0xB7: "arm64-v8a", 0x28: "armeabi-v7a", 0x3E: "x86_64", 0x03: "x86"}


class Disconnected(ConnectionError):
    """The simulated cable was pulled while a command ran."""


class SimulatedDevice:
    def __init__(self, root: Path, serial: str = "SIM0001", abi: str = "arm64-v8a", free_kb: int = 50_000_000,
                 ambient_c: float = 30.0, start_c: float = 34.0, throttle_c: float = 60.0,
                 heat_c_per_s: float = 1.0, cool_tau_s: float = 20.0, thermal_service: bool = True):
        self.root, self.serial, self.abi, self.free_kb = Path(root), serial, abi, free_kb
        (self.root / TMP.lstrip("/")).mkdir(parents=True, exist_ok=True)
        self.ambient_c, self.temp_c, self.throttle_c = ambient_c, start_c, throttle_c
        self.heat_c_per_s, self.cool_tau_s, self.thermal_service = heat_c_per_s, cool_tau_s, thermal_service
        self.transport_id = 1
        self.props = {"ro.product.model": "edgecap simulated device", "ro.product.manufacturer": "edgecap-test",
                      "ro.product.device": "sim", "ro.product.name": "sim", "ro.soc.model": "SIM8000",
                      "ro.board.platform": "sim", "ro.product.cpu.abi": abi, "ro.build.version.sdk": "34",
                      "ro.build.version.release": "14", "ro.serialno": serial}
        self.commands: list[str] = []  # every shell command received, for tests
        self.fail_next: dict[str, tuple[int, str]] = {}  # program name -> (exit code, stderr) once
        self.recorded: dict[str, str] = {}  # program name -> the fixture it prints, instead of the default
        self.unplug_after_runs: int | None = None  # disconnect once this many runner calls have started
        self.runner_calls = 0
        self._conns: set = set()
        self._used: int | None = None  # bytes in the sandbox
        self._gone = False
        self._clock = time.monotonic()
        self._lock = threading.Lock()

    # --- connection bookkeeping --------------------------------------------------------------
    def listing(self, long: bool) -> str:
        extra = f" product:sim model:{self.props['ro.product.model'].replace(' ', '_')} device:sim " \
                f"transport_id:{self.transport_id}" if long else ""
        return f"{self.serial}\tdevice{extra}\n" if not long else f"{self.serial:<22} device{extra}\n"

    def attach(self, conn) -> None:
        if self._gone:
            raise ConnectionError("gone")
        self._conns.add(conn)

    def detach(self, conn) -> None:
        self._conns.discard(conn)

    def disconnect(self) -> None:
        self._gone = True
        for conn in list(self._conns):
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    # --- thermal model -----------------------------------------------------------------------
    def _advance(self, busy_seconds: float = 0.0) -> None:
        with self._lock:
            now = time.monotonic()
            idle = max(now - self._clock - busy_seconds, 0.0)
            self.temp_c = self.ambient_c + (self.temp_c - self.ambient_c) * math.exp(-idle / self.cool_tau_s)
            self.temp_c = min(self.temp_c + self.heat_c_per_s * busy_seconds, 95.0)  # where a phone shuts down
            self._clock = now

    def set_temperature(self, celsius: float) -> None:
        """The device is this hot now (it cools or heats from here)."""
        with self._lock:
            self.temp_c, self._clock = celsius, time.monotonic()

    def speed(self, cpus) -> float:
        """Share of the max frequency the given cores run at now (1.0 unless throttled)."""
        return min(self._cur_freq(c) / max_khz for c in cpus for cl, max_khz in CLUSTERS if c in cl)

    def _cap(self, max_khz: int, little: bool) -> int:
        return max_khz if little or self.temp_c < self.throttle_c else int(max_khz * 0.6)

    def _cur_freq(self, cpu: int) -> int:
        for i, (cpus, max_khz) in enumerate(CLUSTERS):
            if cpu in cpus:
                return self._cap(max_khz, i == 0)
        raise ValueError(cpu)

    def sys_files(self) -> dict[str, str]:
        self._advance()
        files = {"/sys/devices/system/cpu/possible": "0-7"}
        for i, (cpus, max_khz) in enumerate(CLUSTERS):
            base = f"/sys/devices/system/cpu/cpufreq/policy{cpus[0]}"
            cap = self._cap(max_khz, i == 0)
            files.update({f"{base}/related_cpus": " ".join(map(str, cpus)), f"{base}/cpuinfo_max_freq": str(max_khz),
                          f"{base}/scaling_max_freq": str(cap), f"{base}/scaling_cur_freq": str(cap)})
        zones = [("cpu-big-usr", self.temp_c), ("cpu-little-usr", self.temp_c - 3),
                 ("battery", 29.0 + (self.temp_c - 30) / 4)]
        for i, (kind, celsius) in enumerate(zones):
            files[f"/sys/class/thermal/thermal_zone{i}/type"] = kind
            files[f"/sys/class/thermal/thermal_zone{i}/temp"] = str(int(round(celsius * 1000)))
        return files

    # --- files -------------------------------------------------------------------------------
    def local(self, path: str) -> Path | None:
        """The sandbox file for a device path under /data/local/tmp; None elsewhere."""
        norm = os.path.normpath(path)
        if norm != TMP and not norm.startswith(TMP + "/"):
            return None
        return self.root / norm.lstrip("/")

    def used_kb(self) -> int:
        if self._used is None:
            self._used = sum(p.stat().st_size for p in (self.root / TMP.lstrip("/")).rglob("*") if p.is_file())
        return self._used // 1024

    def write_file(self, path: str, data: bytes, mode: int) -> str | None:
        target = self.local(path)
        if target is None:
            return f"couldn't create file: Permission denied: {path}"
        if self.used_kb() + len(data) // 1024 > self.free_kb:
            return "No space left on device"
        target.parent.mkdir(parents=True, exist_ok=True)
        self._used += len(data) - (target.stat().st_size if target.exists() else 0)
        target.write_bytes(data)
        target.chmod(mode & 0o777)
        return None

    def read_file(self, path: str) -> bytes | None:
        if path in self.sys_files():
            return (self.sys_files()[path] + "\n").encode()
        target = self.local(path)
        return target.read_bytes() if target is not None and target.is_file() else None

    def list_dir(self, path: str) -> list[tuple[str, tuple[int, int, int]]]:
        target = self.local(path)
        if target is None or not target.is_dir():
            return []
        return [(p.name, self.stat(f"{path.rstrip('/')}/{p.name}")) for p in sorted(target.iterdir())]

    def stat(self, path: str) -> tuple[int, int, int]:
        target = self.local(path)
        if path in ("/data", "/data/local") or (target is not None and target.is_dir()):
            return stat.S_IFDIR | 0o771, 4096, int(time.time())
        if target is not None and target.is_file():
            st = target.stat()
            return stat.S_IFREG | (st.st_mode & 0o777), st.st_size, int(st.st_mtime)
        return 0, 0, 0

    # --- shell -------------------------------------------------------------------------------
    def shell(self, command: str) -> tuple[int, bytes, bytes]:
        self.commands.append(command)
        code, out, err = 0, [], []
        lexer = shlex.shlex(command, posix=True, punctuation_chars=";&|")
        lexer.whitespace_split = True
        words: list[str] = []
        for token in list(lexer) + [";"]:
            if token not in (";", "&&"):
                words.append(token)
                continue
            if words:
                code, o, e = self._run(words)
                out.append(o)
                err.append(e)
                words = []
            if token == "&&" and code != 0:
                break
        return code, "".join(out).encode(), "".join(err).encode()

    def _run(self, argv: list[str]) -> tuple[int, str, str]:
        while argv and "=" in argv[0] and not argv[0].startswith("/"):
            argv = argv[1:]  # environment assignments (LD_LIBRARY_PATH=...): nothing to load here
        name, args = argv[0], argv[1:]
        if name == "getprop":
            if args:
                return 0, self.props.get(args[0], "") + "\n", ""
            return 0, "".join(f"[{k}]: [{v}]\n" for k, v in sorted(self.props.items())), ""
        if name in ("grep", "cat"):
            return self._read(name, args)
        if name == "mkdir":
            for p in (a for a in args if not a.startswith("-")):
                if self.local(p) is None:
                    return 1, "", f"mkdir: '{p}': Permission denied\n"
                self.local(p).mkdir(parents=True, exist_ok=True)
            return 0, "", ""
        if name == "rm":
            import shutil

            for pattern in (a for a in args if not a.startswith("-")):
                if self.local(pattern) is None:
                    return 1, "", f"rm: {pattern}: Permission denied\n"
                for target in [Path(p) for p in glob.glob(str(self.root) + os.path.normpath(pattern))]:
                    shutil.rmtree(target, ignore_errors=True) if target.is_dir() else target.unlink(missing_ok=True)
                self._used = None  # counted again when next needed
            return 0, "", ""
        if name == "ls":
            found = [p for a in args if not a.startswith("-")
                     for p in sorted(glob.glob(str(self.root) + os.path.normpath(a))) if self.local(a) is not None]
            if not found:
                return 1, "", f"ls: {' '.join(args)}: No such file or directory\n"
            return 0, "".join("/" + str(Path(p).relative_to(self.root)) + "\n" for p in found), ""
        if name == "chmod":
            target = self.local(args[-1])
            if target is None or not target.exists():
                return 1, "", f"chmod: {args[-1]}: No such file or directory\n"
            target.chmod(int(args[0], 8))
            return 0, "", ""
        if name == "df":
            free = max(self.free_kb - self.used_kb(), 0)
            return 0, ("Filesystem      1K-blocks    Used Available Use% Mounted on\n"
                       f"/dev/block/dm-8 {self.free_kb:>9} {self.used_kb():>7} {free:>9}   1% /data\n"), ""
        if name == "dumpsys" and args == ["thermalservice"]:
            if not self.thermal_service:
                return 0, "Can't find service: thermalservice\n", ""
            self._advance()
            status = 0 if self.temp_c < self.throttle_c - 5 else (1 if self.temp_c < self.throttle_c else 3)
            return 0, (f"IsStatusOverride: false\nThermal Status: {status}\nCached temperatures:\n"
                       f"\tTemperature{{mValue={self.temp_c:.1f}, mType=0, mName=cpu-big-usr, mStatus={status}}}\n"
                       "HAL Ready: true\nCurrent temperatures from HAL:\n"
                       f"\tTemperature{{mValue={self.temp_c:.1f}, mType=0, mName=cpu-big-usr, mStatus={status}}}\n"
                       "\tTemperature{mValue=29.0, mType=2, mName=battery, mStatus=0}\n"), ""
        if name == "taskset":
            mask = int(args[0], 16)
            cpus = [c for c in range(8) if mask >> c & 1]
            return self._exec(args[1:], cpus)
        if name.startswith("/"):
            return self._exec(argv, list(range(8)))
        return 127, "", f"/system/bin/sh: {name}: inaccessible or not found\n"

    def _read(self, name: str, args: list[str]) -> tuple[int, str, str]:
        paths = [a for a in args if not a.startswith("-")]
        if name == "grep":
            paths = paths[1:]  # the pattern (".")
        sys_files = self.sys_files()
        out, err, code = [], [], 0
        for pattern in paths:
            matches = sorted(p for p in sys_files if fnmatch.fnmatchcase(p, pattern)) if pattern.startswith("/sys") \
                else sorted("/" + str(Path(p).relative_to(self.root)) for p in glob.glob(str(self.root) + pattern))
            if not matches:
                err.append(f"{name}: {pattern}: No such file or directory\n")
                code = 2 if name == "grep" else 1
            for p in matches:
                value = sys_files[p] if p in sys_files else self.local(p).read_text()
                out.append(f"{p}:{value}\n" if name == "grep" else value + "\n")
        return code, "".join(out), "".join(err)

    def _exec(self, argv: list[str], cpus: list[int]) -> tuple[int, str, str]:
        from tests.targets.adb.sim import standins

        target = self.local(argv[0])
        if target is None or not target.is_file():
            return 127, "", f"/system/bin/sh: {argv[0]}: inaccessible or not found\n"
        if not os.access(target, os.X_OK):
            return 126, "", f"/system/bin/sh: {argv[0]}: can't execute: Permission denied\n"
        head = target.read_bytes()[:20]
        if head[:4] == b"\x7fELF":
            machine = ELF_MACHINES.get(int.from_bytes(head[18:20], "little"), "unknown")
            if machine != self.abi:
                return 126, "", f"/system/bin/sh: {argv[0]}: not executable: {machine} ELF file\n"
        program = target.name
        self.runner_calls += 1
        if self.unplug_after_runs is not None and self.runner_calls > self.unplug_after_runs:
            self.disconnect()
            raise Disconnected()
        if program in self.fail_next:
            code, message = self.fail_next.pop(program)
            return code, "", message
        started = time.monotonic()
        try:
            return standins.run(program, argv[1:], self, cpus)
        except ConnectionError:
            raise
        except Exception:  # noqa: BLE001 - a crashing program: its exit code and its last words
            import traceback

            return 134, "", traceback.format_exc()
        finally:
            self._advance(busy_seconds=time.monotonic() - started)
            self._used = None  # the runner may have written files

    @property
    def gone(self) -> bool:
        return self._gone
