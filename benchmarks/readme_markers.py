"""Write a benchmark's short table between its pair of markers in README.md (the benchmarks are
run as scripts, so they import this module as a sibling)."""

from __future__ import annotations

from pathlib import Path

from edgecap import EdgecapError
from edgecap.core.io import write_text

README = Path(__file__).resolve().parent.parent / "README.md"


def write_between(start: str, end: str, lines: list[str], readme: Path = README) -> None:
    text = readme.read_text()
    if start not in text or end not in text:
        raise EdgecapError(f"{readme}: no {start} ... {end} markers to write between")
    head, rest = text.split(start, 1)
    write_text(readme, head + "\n".join([start, "", *lines, ""]) + end + rest.split(end, 1)[1])
