"""``emingest ingest SOURCE [IDS ...] [options]``: one command per registered source, plug-ins
included, built from the registry. The common options are declared once (``cli.options``);
a source's own flags come from its options model and ``settings_flags``."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic.fields import FieldInfo

from emingest.cli.app import new_app, setup_logging
from emingest.cli.options import (
    ChunkOpt,
    ConfigOpt,
    DataRootOpt,
    DryRunOpt,
    ExecutorOpt,
    ForceOpt,
    JsonOpt,
    KeepRawOpt,
    LevelsOpt,
    ListOpt,
    SchedulerOpt,
    ShardOpt,
    VoxelSizeOpt,
    WorkersOpt,
    fail,
    settings_from_flags,
)
from emingest.cli.results import report, run_jobs, stop_on_ctrl_c
from emingest.errors import ConfigError, EmingestError
from emingest.pipeline import jobs_for
from emingest.sources import available_sources, get_source_class
from emingest.sources.base import Source, VolumeRef, options_for
from emingest.voxel_size import checked_voxel_size

log = logging.getLogger("emingest")

ingest_app = new_app("Ingest volumes from one source (every registered source, plug-ins too).")

_P = inspect.Parameter

# The options every ``ingest <source>`` has, in the order help shows them.
COMMON: list[tuple[str, Any, Any]] = [
    ("voxel_size_nm", VoxelSizeOpt, None),
    ("keep_raw", KeepRawOpt, None),
    ("config", ConfigOpt, None),
    ("data_root", DataRootOpt, None),
    ("workers", WorkersOpt, None),
    ("executor", ExecutorOpt, None),
    ("scheduler", SchedulerOpt, None),
    ("chunk", ChunkOpt, None),
    ("shard", ShardOpt, None),
    ("levels", LevelsOpt, None),
    ("force", ForceOpt, False),
    ("dry_run", DryRunOpt, False),
    ("list_only", ListOpt, False),
    ("as_json", JsonOpt, False),
]


def _flag(key: str, field: FieldInfo) -> str:
    extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
    return str(extra.get("flag") or "--" + key.replace("_", "-"))


def _option(key: str, field: FieldInfo, help_text: str) -> Any:
    """``Annotated[T | None, typer.Option(...)]`` for one model field (unset: None)."""
    flag = _flag(key, field)
    annotation = field.annotation
    if annotation is bool or annotation == bool | None:
        decl = f"{flag}/--no-{flag.removeprefix('--')}"
        return Annotated[bool | None, typer.Option(decl, help=help_text, show_default=False)]
    return Annotated[annotation | None, typer.Option(flag, help=help_text, show_default=False)]  # type: ignore[operator]


def source_parameters(cls: type[Source]) -> list[inspect.Parameter]:
    """The source's own flags: its discover options, then the settings it offers as flags."""
    params = []
    for key, field in cls.options_model.model_fields.items():
        params.append(
            _P(
                f"opt_{key}",
                _P.KEYWORD_ONLY,
                default=None,
                annotation=_option(key, field, field.description or ""),
            )
        )
    for key in cls.settings_flags:
        field = cls.settings_model.model_fields[key]
        help_text = f"{field.description or key} [sources.{cls.name}.{key}]"
        params.append(
            _P(
                f"set_{key}",
                _P.KEYWORD_ONLY,
                default=None,
                annotation=_option(key, field, help_text),
            )
        )
    return params


def ingest(
    name: str,
    ids: Sequence[str],
    *,
    options: dict[str, Any],
    source_settings: dict[str, Any],
    config: Path | None,
    voxel_size_nm: tuple[float, float, float] | None,
    force: bool,
    dry_run: bool,
    list_only: bool,
    as_json: bool,
    **flags: Any,
) -> int:
    """Check the request, discover, then ingest (or list, or plan); returns the exit code:
    0 all complete, 1 a volume failed, 2 invalid arguments, 130 interrupted."""
    try:
        checked_voxel_size(voxel_size_nm, "--voxel-size-nm")
    except ConfigError as err:
        raise fail(err, 2) from err
    settings = settings_from_flags(config, sources={name: source_settings}, **flags)
    try:
        source = get_source_class(name)(settings)  # type: ignore[call-arg]
    except EmingestError as err:
        raise fail(err, 2) from err
    try:
        try:
            given = options_for(source, options)
            source.check_request(ids, given)
        except ConfigError as err:
            raise fail(err, 2) from err
        log_path = setup_logging(settings, name, to_file=not (dry_run or list_only))
        try:
            if list_only:
                for line in source.list_contents(ids, **given):
                    typer.echo(line)
                return 0
            refs = source.discover(ids, **given)
        except EmingestError as err:
            log.error("%s", err)
            raise fail(err, 2 if isinstance(err, ConfigError) else 1) from err
        if dry_run:
            for line in plan_lines(refs):
                typer.echo(line)
            n = len(refs)
            typer.echo(
                f"{n} volume{'' if n == 1 else 's'}; --dry-run: nothing downloaded, no data written"
            )
            return 0
        with stop_on_ctrl_c() as stop:
            jobs = jobs_for(source, refs, voxel_size_nm=voxel_size_nm)
            results = run_jobs(settings, jobs, force=force, stop=stop)
    finally:
        source.close()
    log.info("log written to %s", log_path)
    return report(results, as_json=as_json)


def plan_lines(refs: Sequence[VolumeRef]) -> list[str]:
    """One line per discovered volume: its id, where it comes from, and what the source said
    of it (long lists are counted, their first and last items named)."""
    lines = []
    for r in refs:
        details = []
        for key, value in r.extra:
            if isinstance(value, tuple) and len(value) > 3:
                value = f"{len(value)} ({value[0]} … {value[-1]})"
            elif isinstance(value, tuple):
                value = ", ".join(str(v) for v in value)
            details.append(f"{key}={value}")
        lines.append(
            f"{r.source}/{r.source_id}/{r.name}  {r.locator}  {'  '.join(details)}".rstrip()
        )
    return lines


def make_command(name: str, cls: type[Source]) -> Callable[..., None]:
    """The ``ingest <name>`` command: IDS, the source's own flags, then the common ones."""
    own = source_parameters(cls)
    ids_param = _P(
        "ids",
        _P.KEYWORD_ONLY,
        default=None,
        annotation=Annotated[
            list[str] | None, typer.Argument(help=cls.ids_help, metavar="IDS", show_default=False)
        ],
    )
    common = [_P(key, _P.KEYWORD_ONLY, default=d, annotation=a) for key, a, d in COMMON]

    def command(**values: Any) -> None:
        options = {p.name[4:]: values.pop(p.name) for p in own if p.name.startswith("opt_")}
        settings = {p.name[4:]: values.pop(p.name) for p in own if p.name.startswith("set_")}
        code = ingest(
            name,
            list(values.pop("ids") or []),
            options={k: v for k, v in options.items() if v is not None},
            source_settings={k: v for k, v in settings.items() if v is not None},
            **values,
        )
        raise typer.Exit(code)

    params = [ids_param, *own, *common]
    command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in params}
    command.__doc__ = cls.description or f"Ingest volumes from the {name} source."
    command.__name__ = f"ingest_{name}"
    return command


def _broken(name: str, err: EmingestError) -> Callable[..., None]:
    def command() -> None:
        raise fail(err, 2)

    command.__doc__ = f"(cannot be loaded: {err})"
    return command


def _common_flags() -> set[str]:
    flags: set[str] = set()
    for _, annotation, _ in COMMON:
        info = annotation.__metadata__[0]
        # in Annotated, typer keeps the first name where a default would go
        decls = [info.default] if isinstance(info.default, str) else []
        for decl in [*decls, *(info.param_decls or ())]:
            flags.update(decl.split("/"))
    return flags


def check_flags(cls: type[Source]) -> None:
    """A source's own flag may not shadow a common one (``--levels``, ``--force``...)."""
    own = {_flag(k, f) for k, f in cls.options_model.model_fields.items()}
    own |= {_flag(k, cls.settings_model.model_fields[k]) for k in cls.settings_flags}
    clash = sorted(own & _common_flags())
    if clash:
        raise ConfigError(
            f"source {cls.name!r}: its flags {', '.join(clash)} clash with the common options; "
            'rename them (json_schema_extra={"flag": "--other-name"})'
        )


def _buildable(name: str, command: Callable[..., None]) -> None:
    """Build the command once on its own, so an options model typer cannot turn into flags
    (a list of lists, say) is reported for that source instead of breaking every command."""
    probe = new_app("probe")
    probe.command(name)(command)
    try:
        typer.main.get_command(probe)
    except Exception as err:  # typer raises plain exceptions of many kinds here
        raise ConfigError(f"source {name!r}: its options cannot be flags: {err}") from err


def register(app: typer.Typer) -> None:
    """Mount ``ingest`` with one command per registered source."""
    for name in available_sources():
        try:
            cls = get_source_class(name)
            check_flags(cls)
            command = make_command(name, cls)
            _buildable(name, command)
        except EmingestError as err:  # a broken plug-in must not take the others down
            ingest_app.command(name)(_broken(name, err))
            continue
        ingest_app.command(name)(command)
    app.add_typer(ingest_app, name="ingest")


__all__ = ["COMMON", "ingest", "ingest_app", "make_command", "plan_lines", "register"]
