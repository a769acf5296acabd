"""The `adb` command-line client, one call per step, with errors that name the step.

adb is found in $ADB, then on PATH, then in the optional `adbutils` wheel (which bundles one).
`adb shell` joins its words with spaces and hands them to the device's shell unquoted, so every
device command is built here as one string with each word quoted (`device_command`).
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from pathlib import Path

from edgecap import EdgecapError

TIMEOUT_S = 600.0  # one step; a runner's timed runs included
SIGNALS = {6: "SIGABRT", 9: "SIGKILL: out of memory?", 11: "SIGSEGV", 15: "SIGTERM"}


class AdbError(EdgecapError):
    pass


class DeviceGone(AdbError):
    """The device was unplugged, went offline or stopped answering."""


def find_adb() -> str:
    if os.environ.get("ADB"):
        return os.environ["ADB"]
    found = shutil.which("adb")
    if found:
        return found
    try:
        import adbutils  # optional: its wheel bundles a current adb

        return adbutils.adb_path()
    except Exception:  # noqa: BLE001 - not installed, or no binary for this platform
        raise AdbError("adb not found: install Android platform-tools (Debian: apt install adb), "
                       "set $ADB, or pip install adbutils") from None


def device_command(*argv: str, env: dict | None = None) -> str:
    """One shell command line, every word quoted for the device's shell."""
    words = [f"{k}={shlex.quote(v)}" for k, v in (env or {}).items()] + [shlex.quote(str(a)) for a in argv]
    return " ".join(words)


class Adb:
    def __init__(self, serial: str | None = None):
        self.exe = find_adb()
        self.serial = serial

    def _argv(self, *args: str) -> list[str]:
        return [self.exe, *(["-s", self.serial] if self.serial else []), *args]

    def _call(self, args: list[str], step: str, timeout: float, device: bool = True) -> subprocess.CompletedProcess:
        # stdin closed: `adb shell` forwards it, and would eat a calling script's input.
        try:
            return subprocess.run(self._argv(*args) if device else [self.exe, *args], capture_output=True, text=True,
                                  errors="replace", timeout=timeout, stdin=subprocess.DEVNULL, check=False)
        except subprocess.TimeoutExpired:
            raise AdbError(f"{step}: no answer from the device within {timeout:.0f} s") from None
        except OSError as e:
            raise AdbError(f"cannot run adb ({self.exe}): {e.strerror}") from None

    def devices(self) -> list[dict]:
        """Connected devices from `adb devices -l`: serial, state and the key:value extras."""
        done = self._call(["devices", "-l"], "listing the devices", 60, device=False)
        if done.returncode != 0:
            raise AdbError(f"adb devices failed: {_tail(done.stderr) or done.returncode}")
        return parse_devices(done.stdout)

    def present(self) -> bool:
        try:
            return any(d["serial"] == self.serial and d["state"] == "device" for d in self.devices())
        except (AdbError, OSError, subprocess.TimeoutExpired):
            return False

    def _failed(self, step: str, done: subprocess.CompletedProcess) -> AdbError:
        if not self.present():  # asked, not guessed from the text: a runner may print "not found" too
            return DeviceGone(f"device {self.serial} disconnected while {step}")
        if "no space left" in (done.stderr + done.stdout).lower():
            return AdbError(f"device {self.serial} is full while {step}: free space in /data/local/tmp on the phone")
        return AdbError(f"{step} failed ({exit_text(done.returncode)}): {_tail(done.stderr or done.stdout)}")

    def shell(self, command: str, step: str, check: bool = True, timeout: float = TIMEOUT_S) -> tuple[int, str, str]:
        """(exit code, stdout, stderr) of one command line on the device (shell protocol v2
        carries the exit code). With `check`, a non-zero exit raises, naming the step."""
        done = self._call(["shell", command], step, timeout)
        adb_failed = done.returncode != 0 and done.stderr.lstrip().startswith(("error:", "adb:"))
        if adb_failed or (done.returncode != 0 and not done.stdout and not done.stderr and not self.present()):
            raise self._failed(step, done)  # adb's own failure, not the command's
        if check and done.returncode != 0:
            raise self._failed(step, done)
        return done.returncode, done.stdout, done.stderr

    def push(self, local: list[Path], remote_dir: str, step: str) -> None:
        done = self._call(["push", *map(str, local), remote_dir.rstrip("/") + "/"], step, TIMEOUT_S)
        if done.returncode != 0:
            raise self._failed(step, done)

    def pull(self, remote: list[str], local_dir: Path, step: str) -> None:
        done = self._call(["pull", *remote, str(local_dir)], step, TIMEOUT_S)
        if done.returncode != 0:
            raise self._failed(step, done)


def parse_devices(text: str) -> list[dict]:
    """`adb devices -l`: serial, state (the words before the first key:value, e.g. "no permissions")
    and the key:value extras."""
    found = []
    for line in text.splitlines():
        words = line.split()
        if len(words) < 2 or line.startswith(("List of devices", "*")):
            continue
        state = []
        for w in words[1:]:
            if ":" in w and not w.startswith("("):
                break
            state.append(w)
        extras = dict(w.split(":", 1) for w in words[1 + len(state):] if ":" in w and not w.startswith("["))
        found.append({"serial": words[0], "state": "no permissions" if state[:2] == ["no", "permissions"] else
                      " ".join(state) or "?", **extras})
    return found


def state_hint(state: str) -> str:
    """What to do about a device adb lists but cannot use."""
    if state == "unauthorized":
        return "accept the USB debugging prompt on the phone"
    if state == "no permissions":
        return "this user may not open the USB device: add a udev rule for it and join the plugdev group"
    return "reconnect it"


def exit_text(code: int) -> str:
    """An exit code, with the signal a shell reports as 128 + N."""
    if code > 128 and code - 128 in SIGNALS:
        return f"exit {code}, killed by {SIGNALS[code - 128]}"
    return f"exit {code}"


def _tail(text: str, lines: int = 3) -> str:
    kept = [ln.strip() for ln in text.splitlines() if ln.strip()][-lines:]
    return " | ".join(kept)
