"""Running the pipeline from a command: progress display, Ctrl-C, and what is printed per
volume (a line for people, or ``--json``: one object per volume for scripts)."""

from __future__ import annotations

import contextlib
import json
import logging
import signal
import sys
import threading
from collections.abc import Iterator
from typing import Any

import typer

from emingest.config import Settings
from emingest.errors import ConfigError
from emingest.pipeline import STATUS_INTERRUPTED, Pipeline, VolumeJob, VolumeResult
from emingest.progress import LogProgress, Progress, RichProgress

log = logging.getLogger("emingest")

EXIT_INTERRUPTED = 130  # 128 + SIGINT, what shells report for a command stopped by Ctrl-C
INTERRUPTED_MESSAGE = "interrupted: run the same command to resume"


@contextlib.contextmanager
def stop_on_ctrl_c() -> Iterator[threading.Event]:
    """An event the first Ctrl-C sets (the pipeline then winds down within a few seconds:
    tasks not started are dropped, the tile journal is on disk, records stay resumable); a
    second Ctrl-C interrupts at once. Outside the main thread, nothing is installed."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def on_sigint(signum: int, frame: Any) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        log.warning("Ctrl-C: stopping (pending region tasks cancelled); Ctrl-C again to abort")

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, previous)


@contextlib.contextmanager
def progress_display() -> Iterator[Progress]:
    """A live display on a terminal, plain log lines otherwise."""
    if sys.stderr.isatty():
        with RichProgress() as progress:
            yield progress
    else:
        yield LogProgress()


def run_jobs(
    settings: Settings, jobs: list[VolumeJob], *, force: bool, stop: threading.Event | None = None
) -> list[VolumeResult]:
    """Run the pipeline over ``jobs`` with the progress display; an executor that cannot
    start (a Dask scheduler that cannot be reached) exits 2 with one line."""
    with progress_display() as progress:
        try:
            pipe = Pipeline(settings, progress=progress, stop=stop)
        except ConfigError as err:
            typer.echo(f"emingest: {err}", err=True)
            raise typer.Exit(2) from err
        with pipe:
            return pipe.run(jobs, force=force)


def volume_json(result: VolumeResult) -> dict[str, Any]:
    """What ``--json`` prints for one volume."""
    rec = result.record
    ref = result.ref
    return {
        "id": f"{ref.source}/{ref.source_id}/{ref.name}",
        "status": result.status,
        "shape": list(rec.volume_shape) if rec and rec.volume_shape else None,
        "voxel_size_nm": list(rec.voxel_size_nm) if rec and rec.voxel_size_nm else None,
        "record": str(result.record_path),
    }


def report(results: list[VolumeResult], *, as_json: bool = False) -> int:
    """One line (or JSON object) per volume; the exit code: 0 when every volume is complete
    (or skipped), 130 when interrupted, else 1."""
    for r in results:
        if as_json:
            typer.echo(json.dumps(volume_json(r)))
            continue
        shape = r.record.volume_shape if r.record else None
        line = f"{r.ref.source}/{r.ref.source_id}/{r.ref.name}: {r.status}"
        if shape:
            line += f", shape {shape}"
        line += f" ({r.note})" if r.note else ""
        typer.echo(f"{line} (record {r.record_path})", err=not r.ok)
    if any(r.status == STATUS_INTERRUPTED for r in results):
        typer.echo(INTERRUPTED_MESSAGE, err=True)
        return EXIT_INTERRUPTED
    failed = sum(not r.ok for r in results)
    if failed:
        typer.echo(f"emingest: {failed} of {len(results)} volumes failed", err=True)
    return 1 if failed else 0


__all__ = [
    "EXIT_INTERRUPTED",
    "INTERRUPTED_MESSAGE",
    "progress_display",
    "report",
    "run_jobs",
    "stop_on_ctrl_c",
    "volume_json",
]
