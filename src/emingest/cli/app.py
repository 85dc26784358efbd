"""The ``emingest`` typer app, the root options and logging: the only place that configures
logging. Help text is literal (``rich_markup_mode=None``): ``[storage.data_root]`` stays."""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from emingest.config import Settings

HELP = "Ingest volume EM from public archives into OME-Zarr with a metadata catalog."

# Help texts name settings in square brackets; rich markup would swallow them.
MARKUP = None


def new_app(help: str, **kw: Any) -> typer.Typer:
    """A typer app (or sub-app) with literal help text and no shell-completion commands."""
    return typer.Typer(
        help=help,
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        rich_markup_mode=MARKUP,
        **kw,
    )


app = new_app(HELP, name="emingest")


def _print_version(value: bool) -> None:
    if value:
        from emingest._version import __version__

        typer.echo(f"emingest {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit"
        ),
    ] = False,
) -> None:
    """Ingest volume EM from public archives into OME-Zarr with a metadata catalog."""


class _CurrentStderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is now (test runners swap it), not the one at start."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def setup_logging(settings: Settings, source: str, *, to_file: bool = True) -> Path:
    """Log to ``<log dir>/<source>_<YYYYmmdd_HHMMSS>.log`` (``<data_root>/logs`` unless
    ``logging.log_dir`` says otherwise) and to stderr; ``to_file=False`` (a dry run, a
    listing: commands that write nothing) logs to stderr only."""
    log_dir = settings.log_dir
    path = log_dir / f"{source}_{time.strftime('%Y%m%d_%H%M%S')}.log"
    root = logging.getLogger()
    root.setLevel(settings.logging.level.upper())
    for h in list(root.handlers):
        root.removeHandler(h)
        h.close()
    if to_file:
        log_dir.mkdir(parents=True, exist_ok=True)
        fh = logging.FileHandler(path, encoding="utf-8")
        fh.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(fh)
    if sys.stderr.isatty():
        from rich.logging import RichHandler

        root.addHandler(RichHandler(show_path=False, rich_tracebacks=False, markup=False))
    else:
        sh = _CurrentStderrHandler()
        sh.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
        root.addHandler(sh)
    for noisy in ("pyftpdlib", "urllib3", "botocore", "s3fs", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return path


__all__ = ["HELP", "app", "new_app", "setup_logging"]
