"""The progress displays: the live one on a terminal and plain log lines without one."""

from __future__ import annotations

import io
import logging

from rich.console import Console

from emingest.progress import LogProgress, RichProgress


def test_live_display_shows_names_and_status_literally() -> None:
    out = io.StringIO()
    with RichProgress(Console(file=out, width=120, force_terminal=False)) as progress:
        progress.start("a", "epfl/ca1/vol [a]", 2_000_000)
        progress.advance("a", 2_000_000)
        progress.finish("a", "complete")
        progress.advance("unknown", 5)  # a key never started is ignored
        progress.finish("unknown", "error: x")
    text = out.getvalue()
    assert "epfl/ca1/vol [a] [complete]" in text  # brackets are not taken as rich markup
    assert "2.0/2.0 MB" in text


def test_log_lines_without_a_terminal(caplog) -> None:
    caplog.set_level(logging.INFO)
    progress = LogProgress()
    progress.start("a", "idr/1/img", 1_000_000)
    progress.advance("a", 1_000_000)
    progress.finish("a", "complete")
    text = caplog.text
    assert "idr/1/img" in text and "complete" in text
