"""The README's Python examples run as written, in order, in a fresh folder."""

import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_python_examples_run(tmp_path, monkeypatch):
    blocks = python_blocks()
    assert len(blocks) >= 2
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, str(README), "exec"), namespace)  # noqa: S102 - our own README
    assert namespace["poses"][-1] is not None and namespace["poses"][-1][1].shape == (17, 3)
    assert (tmp_path / "runs" / "api" / "validate.json").exists()


def test_readme_names_only_commands_that_exist():
    from edgecap.cli import build_parser

    commands = set(build_parser()._subparsers._group_actions[0].choices)
    text = README.read_text()
    shell = "\n".join(re.findall(r"```bash\n(.*?)```", text, flags=re.S))
    used = set(re.findall(r"^edgecap (\w+)", shell, flags=re.M)) | set(re.findall(r"`edgecap (\w+)", text))
    assert used and used <= commands, used - commands


def test_readme_command_lines_parse():
    """Every `edgecap ...` line of the README's shell blocks is accepted by the CLI's parser (the
    long runs themselves are the demo and the slow tests)."""
    import shlex

    from edgecap.cli import build_parser, split_set_values

    shell = "\n".join(re.findall(r"```bash\n(.*?)```", README.read_text(), flags=re.S))
    lines = [ln.split("#")[0].strip() for ln in shell.splitlines() if ln.startswith("edgecap ")]
    assert len(lines) >= 8
    for line in lines:
        args = build_parser().parse_args(split_set_values(shlex.split(line)[1:]))
        assert args.command == shlex.split(line)[1]
