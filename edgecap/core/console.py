"""What the terminal shows, and where everything else goes.

The converters and runtimes edgecap drives print a lot: litert-torch's conversion steps,
coremltools' MIL passes, ExecuTorch's C++ runtime log, absl and oneDNN notices. Inside
`quiet_to(log_path)` all of it, Python-level and C-level (file descriptors 1 and 2), goes to a
log file, and only what edgecap writes through `say` and `progress` reaches the terminal.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import sys
from pathlib import Path

_terminal: list[io.TextIOBase] = []  # the streams of the terminal, innermost last


def terminal() -> io.TextIOBase:
    """The stream edgecap's own output goes to: the terminal's stderr, even while the process's
    file descriptors point at a log."""
    return _terminal[-1] if _terminal else sys.stderr


def say(*parts, file=None) -> None:
    """A line for the user (results, summaries): on the terminal's stdout."""
    print(*parts, file=file or (_stdout[-1] if _stdout else sys.stdout), flush=True)


_stdout: list[io.TextIOBase] = []


def progress(iterable=None, **kwargs):
    """A tqdm progress bar on the terminal."""
    from tqdm import tqdm

    return tqdm(iterable, file=terminal(), **kwargs)


def _own_copy(stream, fd: int) -> io.TextIOBase:
    """A stream that reaches where `stream` reaches now, and keeps doing so after fd `fd` is
    pointed elsewhere: a duplicate of a real file descriptor, or the object itself (pytest's
    capture, a StringIO) when it has none."""
    try:
        if stream.fileno() != fd:
            return stream
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return stream
    stream.flush()
    return os.fdopen(os.dup(fd), "w", buffering=1, encoding=getattr(stream, "encoding", None) or "utf-8",
                     errors="replace")


@contextlib.contextmanager
def quiet_to(log_path: Path):
    """Send every other library's output, Python-level and C-level, to `log_path` (appended)."""
    from edgecap import EdgecapError

    log_path = Path(log_path)
    try:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(log_path, "a", buffering=1, errors="replace")
    except OSError as e:
        raise EdgecapError(f"cannot write the log {log_path}: {e}") from None
    log.write(f"{MARKER} {' '.join(sys.argv)}\n")
    out, err = _own_copy(sys.stdout, 1), _own_copy(sys.stderr, 2)
    saved = {fd: os.dup(fd) for fd in (1, 2)}
    old_streams = sys.stdout, sys.stderr
    with log:
        for stream in old_streams:
            with contextlib.suppress(Exception):
                stream.flush()
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        sys.stdout = sys.stderr = log
        _terminal.append(err)
        _stdout.append(out)
        try:
            yield log_path
        finally:
            _terminal.pop()
            _stdout.pop()
            with contextlib.suppress(Exception):
                log.flush()
            sys.stdout, sys.stderr = old_streams
            for fd, copy in saved.items():
                os.dup2(copy, fd)
                os.close(copy)
            for stream, original in ((out, old_streams[0]), (err, old_streams[1])):
                if stream is not original:
                    stream.close()


MARKER = "==== edgecap:"  # starts each command's part of a log


def log_tail(log_path: Path, lines: int = 8) -> list[str]:
    """The last non-empty lines the current command wrote to a log, for an error message."""
    try:
        text = Path(log_path).read_text(errors="replace")
    except OSError:
        return []
    text = text.rsplit(MARKER, 1)[-1].split("\n", 1)[-1] if MARKER in text else text
    # progress bars (tqdm's "NN%|###|") say nothing about what went wrong
    return [ln for ln in text.replace("\r", "\n").splitlines() if ln.strip() and not _PROGRESS_BAR.search(ln)][-lines:]


_PROGRESS_BAR = re.compile(r"\d+%\|")


def machine_load() -> tuple[float, int]:
    """(1-minute load average, cores) of this machine."""
    return os.getloadavg()[0], os.cpu_count() or 1


def busy_note() -> str:
    """A warning when the machine is busy (load above half its cores), else ''."""
    load, cores = machine_load()
    if load <= 0.5 * cores:
        return ""
    return (f"note: this machine is busy (load {load:.1f} on {cores} cores): stages take longer than on an idle "
            "machine, and timings are noisier")
