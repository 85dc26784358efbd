"""The layer picture in docs/architecture.md is the imports' picture: every module of
``emingest`` imports only from layers below its own (function-level imports included)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "emingest"


def layers() -> dict[str, int]:
    """Component -> layer, read from the ``layers`` block of docs/architecture.md."""
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    block = text.split("<!-- layers -->", 1)[1].split("```", 2)[1]
    ranks: dict[str, int] = {}
    for line in block.splitlines():
        m = re.match(r"^(\d+)\s+(.+?)\s*$", line)
        if m:
            for name in m.group(2).split():
                ranks[name] = int(m.group(1))
    return ranks


def component(module: str) -> str | None:
    """``emingest.sources.idr`` -> ``sources``; None outside the package."""
    parts = module.split(".")
    if parts[0] != "emingest":
        return None
    return parts[1] if len(parts) > 1 else "emingest"


def imports() -> list[tuple[str, str, str]]:
    """(file, importer component, imported component) for every import between components."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE)
        me = (
            rel.parts[0].removesuffix(".py")
            if len(rel.parts) > 1 or rel.stem != "__init__"
            else "emingest"
        )
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            for name in names:
                other = component(name)
                if other is not None and other != me:
                    found.append((str(rel), me, other))
    return found


def test_the_layers_block_is_read() -> None:
    ranks = layers()
    assert ranks["cli"] > ranks["pipeline"] > ranks["sources"] > ranks["regions"]


def test_every_component_has_a_layer() -> None:
    ranks = layers()
    missing = sorted(
        {c for _, me, other in imports() for c in (me, other)} - set(ranks) - {"emingest"}
    )
    assert not missing, f"add {missing} to the layers block of docs/architecture.md"


def test_imports_only_go_down() -> None:
    ranks = layers()
    upward = [
        f"{file}: {me} (layer {ranks[me]}) imports {other} (layer {ranks[other]})"
        for file, me, other in imports()
        if me in ranks and other in ranks and ranks[other] >= ranks[me]
    ]
    assert not upward, "\n".join(upward)


CONTRACT_MEMBERS = {
    "close",
    "labels_target",
    "read_into",
    "read_level",
    "digest_from_store",
    "options",
    "preflight",
    "preflight_urls",
    "default_datasets",
    "list_contents",
    "list_arrays",
    "check_request",
}


def test_nothing_outside_a_source_tests_for_its_name_or_getattrs_the_contract() -> None:
    from emingest.sources import BUILTIN_SOURCES

    names = set(BUILTIN_SOURCES)
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE)
        if rel.parts[0] in ("sources", "testing"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            # "local" is also the name of Dask's own cluster (``scheduler == "local"``)
            if isinstance(node, ast.Compare) and "scheduler" not in ast.unparse(node):
                for side in [node.left, *node.comparators]:
                    values = (
                        side.elts if isinstance(side, ast.Tuple | ast.Set | ast.List) else [side]
                    )
                    for v in values:
                        if isinstance(v, ast.Constant) and v.value in names:
                            found.append(f"{rel}:{node.lineno}: compares with {v.value!r}")
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id in ("getattr", "hasattr")
                and len(node.args) >= 2
                and isinstance(node.args[1], ast.Constant)
                and node.args[1].value in CONTRACT_MEMBERS
            ):
                found.append(f"{rel}:{node.lineno}: {node.func.id}(..., {node.args[1].value!r})")
    assert not found, "\n".join(found)


def test_testing_never_uses_the_pipeline_or_the_command_line() -> None:
    """``testing`` sits above ``vectors`` (its embedder contract tests), so its rank alone no
    longer keeps it below the pipeline: the replicas must stay usable without running it."""
    found = [
        f"{file}: testing imports {other}"
        for file, me, other in imports()
        if me == "testing" and other in ("pipeline", "run", "serve", "cli")
    ]
    assert not found, "\n".join(found)
