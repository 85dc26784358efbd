"""``emingest config show|check`` and ``emingest schema``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from emingest.cli.app import new_app
from emingest.cli.options import ConfigOpt, fail, settings_from_flags

config_app = new_app("Show or check the configuration.")


@config_app.command("show")
def config_show(config: ConfigOpt = None) -> None:
    """Print the effective configuration as TOML (datasets included: the sources' defaults
    when none are configured)."""
    from emingest.config_toml import settings_to_toml
    from emingest.run import resolve_datasets

    settings = settings_from_flags(config)
    typer.echo(
        settings_to_toml(settings.model_copy(update={"datasets": resolve_datasets(settings)}))
    )


@config_app.command("check")
def config_check(config: ConfigOpt = None) -> None:
    """Validate the configuration (settings, every [sources.*] section, every dataset's source
    and options) without reaching any archive; exit 0 when valid, 2 otherwise."""
    from emingest.run import configuration_problems, resolve_datasets

    settings = settings_from_flags(config)
    problems = configuration_problems(settings)
    names = set(settings.sources) | {d.source for d in resolve_datasets(settings)}
    if problems:
        raise fail("\n".join(problems), 2)
    n = len(resolve_datasets(settings))
    typer.echo(f"{config or 'defaults'}: valid ({n} datasets, sources {', '.join(sorted(names))})")


COMMITTED_SCHEMA = Path("schemas/record.schema.json")


def schema(
    output: Annotated[
        Path | None,
        typer.Option(
            help="Write it to this file (default: print it; with --check: compare "
            "with schemas/record.schema.json)"
        ),
    ] = None,
    check: Annotated[bool, typer.Option(help="Fail if the file differs")] = False,
) -> None:
    """Print, write or check the JSON Schema of the metadata record."""
    from emingest.records import record_json_schema_text

    text = record_json_schema_text()
    if check:
        path = output or COMMITTED_SCHEMA
        same = path.exists() and path.read_text(encoding="utf-8") == text
        typer.echo(f"{path}: {'up to date' if same else 'DIFFERS from the model'}")
        raise typer.Exit(0 if same else 1)
    if output is None:  # nothing is written unless asked where
        typer.echo(text, nl=False)
        return
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text, encoding="utf-8")
    typer.echo(f"wrote {output}")


def register(app: typer.Typer) -> None:
    app.add_typer(config_app, name="config")
    app.command("schema")(schema)


__all__ = ["config_app", "register"]
