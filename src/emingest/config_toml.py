"""Settings rendered as TOML, for ``emingest config show`` (copy, edit, pass with --config)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from emingest.config import Settings

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, dict):  # inside a list: an inline table
        return "{ " + ", ".join(f"{_key(k)} = {_value(x)}" for k, x in v.items()) + " }"
    if isinstance(v, Path):
        v = str(v)
    # A JSON string is a valid TOML basic string: same quotes, same escapes.
    return _json_string(str(v))


def _json_string(text: str) -> str:
    # TOML also forbids DEL (U+007F) unescaped, which JSON allows.
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def _key(k: str) -> str:
    return k if _BARE_KEY.fullmatch(k) else _json_string(k)


def _table(lines: list[str], name: str, data: dict[str, Any]) -> None:
    scalars = {k: v for k, v in data.items() if not isinstance(v, dict)}
    tables = {k: v for k, v in data.items() if isinstance(v, dict)}
    if scalars or not tables:
        lines.append(f"[{name}]")
        for k, v in scalars.items():
            if v is None:
                lines.append(f"# {_key(k)} = (unset)")
            else:
                lines.append(f"{_key(k)} = {_value(v)}")
        lines.append("")
    for k, v in tables.items():
        _table(lines, f"{name}.{_key(k)}", v)


def settings_to_toml(settings: Settings) -> str:
    data = settings.model_dump(mode="python")
    lines: list[str] = ["# emingest effective configuration"]
    for section, values in data.items():
        if isinstance(values, dict):
            _table(lines, section, values)
        elif isinstance(values, list) and all(isinstance(v, dict) for v in values):
            for item in values:  # an array of tables, e.g. [[datasets]]
                lines.append(f"[[{_key(section)}]]")
                for k, v in item.items():
                    lines.append(f"{_key(k)} = {_value(v)}")
                lines.append("")
    return "\n".join(lines).rstrip() + "\n"
