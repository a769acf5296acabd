"""The console helpers: what an error message quotes from a stage's log."""

from edgecap.core.console import MARKER, log_tail


def test_log_tail_quotes_the_current_command_without_progress_bars(tmp_path):
    log = tmp_path / "stage.log"
    log.write_text(f"{MARKER} edgecap export old\nold failure\n{MARKER} edgecap export new\n"
                   "converting\n  Running MIL default pipeline:  27%|##7       | 25/92 [00:00<00:00]\r"
                   "  Running MIL default pipeline: 100%|##########| 92/92\nValueError: bad op\n\n")
    assert log_tail(log) == ["converting", "ValueError: bad op"]
    assert log_tail(log, lines=1) == ["ValueError: bad op"]
    assert log_tail(tmp_path / "missing.log") == []
