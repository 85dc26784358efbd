"""Settings rendered as TOML, for ``emingest config show`` (copy, edit, pass with --config)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from emingest.config import Settings


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, Path):
        v = str(v)
    return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _table(lines: list[str], name: str, data: dict[str, Any]) -> None:
    scalars = {k: v for k, v in data.items() if not isinstance(v, dict)}
    tables = {k: v for k, v in data.items() if isinstance(v, dict)}
    if scalars or not tables:
        lines.append(f"[{name}]")
        for k, v in scalars.items():
            if v is None:
                lines.append(f"# {k} = (unset)")
            else:
                lines.append(f"{k} = {_value(v)}")
        lines.append("")
    for k, v in tables.items():
        _table(lines, f"{name}.{k}", v)


def settings_to_toml(settings: Settings) -> str:
    data = settings.model_dump(mode="python")
    lines: list[str] = ["# emingest effective configuration"]
    for section, values in data.items():
        if isinstance(values, dict):
            _table(lines, section, values)
    return "\n".join(lines).rstrip() + "\n"
