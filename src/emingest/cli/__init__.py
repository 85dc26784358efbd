"""The ``emingest`` command. Commands live in their own modules, each with ``register(app)``:

- ``cli.app``: the app, the root options and logging (the only place that configures it);
- ``cli.options``: the options commands share, declared once;
- ``cli.ingest``: ``ingest <source>``, one command per registered source, plug-ins included;
- ``cli.run``: ``run`` and ``demo``;
- ``cli.config``: ``config show|check`` and ``schema``;
- ``cli.catalog``: ``catalog sync|list|show|report``.
"""

from __future__ import annotations

from emingest.cli import catalog, config, ingest, run
from emingest.cli.app import app, setup_logging
from emingest.cli.results import report, run_jobs
from emingest.cli.run import demo_datasets

ingest.register(app)
run.register(app)
config.register(app)
catalog.register(app)
# Further command modules register here: `from emingest.cli import <topic>` and
# `<topic>.register(app)`, one pair each, just before `def main`.


def main() -> None:
    app()


__all__ = ["app", "demo_datasets", "main", "report", "run_jobs", "setup_logging"]

if __name__ == "__main__":
    main()
