"""The ``emingest`` command. Commands live in their own modules, each with ``register(app)``:

- ``cli.app``: the app, the root options and logging (the only place that configures it);
- ``cli.options``: the options commands share, declared once;
- ``cli.ingest``: ``ingest <source>``, one command per registered source, plug-ins included;
- ``cli.run``: ``run`` and ``demo``;
- ``cli.config``: ``config show|check`` and ``schema``;
- ``cli.catalog``: ``catalog sync|list|show|report``.
"""

from __future__ import annotations

import logging

from emingest.cli import catalog, config, ingest, run, serve, vectors
from emingest.cli.app import app, setup_logging
from emingest.cli.ingest import plan_lines
from emingest.cli.options import (
    ChunkOpt,
    ConfigOpt,
    DataRootOpt,
    DryRunOpt,
    ForceOpt,
    JsonOpt,
    KeepRawOpt,
    LevelsOpt,
    ShardOpt,
    WorkersOpt,
    fail,
    flag_overrides,
    settings_from_flags,
)
from emingest.cli.results import report, run_jobs, stop_on_ctrl_c
from emingest.cli.run import demo_datasets

log = logging.getLogger("emingest")
# The names command modules written against the single-file cli.py imported from here.
_settings = settings_from_flags
_overrides = flag_overrides

ingest.register(app)
run.register(app)
config.register(app)
catalog.register(app)
# Further command modules register here: `from emingest.cli import <topic>` and
# `<topic>.register(app)`, one pair each, just before `def main`.
serve.register(app)
vectors.register(app)


def main() -> None:
    app()


__all__ = [
    "ChunkOpt",
    "ConfigOpt",
    "DataRootOpt",
    "DryRunOpt",
    "ForceOpt",
    "JsonOpt",
    "KeepRawOpt",
    "LevelsOpt",
    "ShardOpt",
    "WorkersOpt",
    "app",
    "demo_datasets",
    "fail",
    "main",
    "plan_lines",
    "report",
    "run_jobs",
    "settings_from_flags",
    "setup_logging",
    "stop_on_ctrl_c",
]

if __name__ == "__main__":
    main()
