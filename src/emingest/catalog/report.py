"""``emingest catalog report``: what the sidecars under a data root hold, per source.

Reads the sidecars themselves (not the index), so it also sees the files the index cannot hold:
malformed JSON, records that fail the schema. It keeps the structure users already consume
(``distinct_keys``, ``key_ratios_by_source``, ``total_files_by_source``) and adds the status of
records, schema validation and expected-versus-collected keys, per source. Keys under
``additional_metadata`` (what each archive said) are reported apart from the common fields.

The source of a sidecar is the folder it sits in (``<data_root>/<source>/…``), so a file that
cannot be parsed is still counted where it belongs. The data root is a folder or an ``s3://``
prefix (:class:`emingest.storage.DataRoot`); on a bucket the sidecars are fetched many at once.
"""

from __future__ import annotations

import json
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from emingest.atomic import atomic_write_text
from emingest.catalog import status_group
from emingest.errors import DataRootError
from emingest.layout import iter_record_locations
from emingest.records import STATUS_COMPLETE, VolumeRecord, locate_in_root, utc_now
from emingest.storage import DataRoot, LocalRoot, Location, as_root

RATIO_DIGITS = 4
STATUS_GROUPS = ("complete", "in-progress", "error", "unknown")
MAX_ERRORS_PER_RECORD = 20


def expected_keys() -> list[str]:
    """The top-level fields of the record schema (every field of :class:`VolumeRecord`)."""
    return sorted(VolumeRecord.model_fields)


def required_keys() -> list[str]:
    return sorted(k for k, f in VolumeRecord.model_fields.items() if f.is_required())


@dataclass
class _Sidecar:
    path: str
    source: str
    data: dict[str, Any]


def _shown(location: Location) -> str:
    """A sidecar as the user knows it: a path on this machine, else its URL."""
    return str(location.path) if location.is_local else location.url


def _fetch(location: Location) -> bytes | Exception:
    try:
        return location.read_bytes()
    except (OSError, DataRootError) as err:
        return err


def _load(locations: list[Location], root: DataRoot) -> tuple[list[_Sidecar], list[dict[str, str]]]:
    good: list[_Sidecar] = []
    bad: list[dict[str, str]] = []
    if isinstance(root, LocalRoot):
        bodies = [_fetch(loc) for loc in locations]
    else:  # small objects, one GET each: many in flight (the client is per thread)
        with ThreadPoolExecutor(16, thread_name_prefix="report") as pool:
            bodies = list(pool.map(_fetch, locations))
    for location, body in zip(locations, bodies, strict=True):
        path = _shown(location)
        source = location.key.split("/", 1)[0]
        try:
            if isinstance(body, Exception):
                raise body
            data = json.loads(body.decode("utf-8"))
        except (OSError, DataRootError, UnicodeDecodeError, ValueError) as err:
            bad.append({"path": path, "source": source, "error": f"{type(err).__name__}: {err}"})
            continue
        if not isinstance(data, dict):
            kind = type(data).__name__
            bad.append({"path": path, "source": source, "error": f"not a JSON object: {kind}"})
            continue
        good.append(_Sidecar(path, source, data))
    return good, bad


def _volume_location(data: dict[str, Any], root: DataRoot) -> Location | None:
    """The record's OME-Zarr image, resolved against the data root (records hold paths
    relative to it)."""
    paths = data.get("local_paths")
    volume = paths.get("volume") if isinstance(paths, dict) else None
    if not isinstance(volume, str) or not volume:
        return None
    try:
        return locate_in_root(volume, root)
    except ValueError:  # a '..' in a hand-edited record: nothing there to check
        return None


def _ratios(counts: Counter[str], total: int) -> dict[str, float]:
    return {k: round(counts[k] / total, RATIO_DIGITS) for k in sorted(counts)} if total else {}


def _validate(data: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(missing required fields as dotted paths, every problem as ``loc: message``)."""
    try:
        VolumeRecord.model_validate(data)
    except ValidationError as err:
        missing: list[str] = []
        problems: list[str] = []
        for e in err.errors():
            loc = ".".join(str(p) for p in e["loc"]) or "(record)"
            if e["type"] == "missing":
                missing.append(loc)
            problems.append(f"{loc}: {e['msg']}")
        return missing, problems[:MAX_ERRORS_PER_RECORD]
    return [], []


def build_report(data_root: DataRoot | Path | str) -> dict[str, Any]:
    """The report as a JSON-able dict. Never raises for a bad sidecar: it is listed instead.

    ``data_root``: a folder, an ``s3://`` URL (default S3 settings) or a
    :class:`~emingest.storage.DataRoot` (``settings.storage.root()``)."""
    root = as_root(data_root)
    locations = list(iter_record_locations(root))
    sidecars, unreadable = _load(locations, root)

    total_files: Counter[str] = Counter(loc.key.split("/", 1)[0] for loc in locations)
    by_source: dict[str, list[_Sidecar]] = defaultdict(list)
    for s in sidecars:
        by_source[s.source].append(s)
    sources = sorted(total_files)
    expected = expected_keys()
    expected_set = set(expected)

    distinct: set[str] = set()
    distinct_extra: set[str] = set()
    ratios: dict[str, dict[str, float]] = {}
    extra_ratios: dict[str, dict[str, float]] = {}
    statuses: dict[str, dict[str, int]] = {}
    errors: dict[str, list[dict[str, str]]] = {}
    missing_volumes: dict[str, list[dict[str, str]]] = {}
    validation: dict[str, dict[str, Any]] = {}
    expected_vs: dict[str, dict[str, Any]] = {}
    extra_expected_vs: dict[str, dict[str, Any]] = {}

    for source in sources:
        records = by_source.get(source, [])
        n = len(records)
        keys: Counter[str] = Counter()
        extra_keys: Counter[str] = Counter()
        complete_extra: set[str] = set()
        groups: Counter[str] = Counter({g: 0 for g in STATUS_GROUPS})
        missing_required: Counter[str] = Counter()
        invalid: list[dict[str, Any]] = []
        errors[source] = []
        missing_volumes[source] = []
        for s in records:
            keys.update(s.data.keys())
            extra = s.data.get("additional_metadata")
            extra = extra if isinstance(extra, dict) else {}
            extra_keys.update(extra.keys())
            status = s.data.get("status")
            group = status_group(status)
            groups[group] += 1
            if group == "error":
                errors[source].append({"path": str(s.path), "status": str(status)})
            if status == STATUS_COMPLETE:
                complete_extra.update(extra.keys())
                volume = _volume_location(s.data, root)
                if volume is not None and not volume.exists():
                    missing_volumes[source].append({"path": s.path, "volume": str(volume)})
            missing, problems = _validate(s.data)
            missing_required.update(missing)
            if problems:
                invalid.append({"path": str(s.path), "missing": missing, "errors": problems})
        distinct.update(keys)
        distinct_extra.update(extra_keys)
        ratios[source] = _ratios(keys, n)
        extra_ratios[source] = _ratios(extra_keys, n)
        statuses[source] = dict(groups)
        validation[source] = {
            "records": n,
            "valid": n - len(invalid),
            "invalid": len(invalid),
            "missing_required": dict(sorted(missing_required.items())),
            "invalid_records": invalid,
        }
        expected_vs[source] = {
            "collected": sorted(keys),
            "missing_expected": {k: n - keys[k] for k in expected if keys[k] < n},
            "unexpected": {k: keys[k] for k in sorted(keys) if k not in expected_set},
        }
        extra_expected_vs[source] = {
            "expected": sorted(complete_extra),
            "collected": sorted(extra_keys),
            "missing_expected": {
                k: n - extra_keys[k] for k in sorted(complete_extra) if extra_keys[k] < n
            },
        }

    return {
        "generated_at": utc_now(),
        "data_root": root.url,
        "record_schema": {"expected_keys": expected, "required_keys": required_keys()},
        # -- the structure the old metadata catalog had -----------------------------------
        "distinct_keys": sorted(distinct),
        "key_ratios_by_source": ratios,
        "total_files_by_source": {s: total_files[s] for s in sources},
        # -- additions -----------------------------------------------------------------------
        "records_by_source": {s: len(by_source.get(s, [])) for s in sources},
        "status_by_source": statuses,
        "errors_by_source": errors,
        "missing_volumes_by_source": missing_volumes,
        "validation_by_source": validation,
        "expected_vs_collected_by_source": expected_vs,
        "additional_metadata": {
            "distinct_keys": sorted(distinct_extra),
            "key_ratios_by_source": extra_ratios,
            "expected_vs_collected_by_source": extra_expected_vs,
        },
        "unreadable": unreadable,
    }


def summary_text(report: dict[str, Any]) -> str:
    """A readable summary of a report: what the ``.log`` holds and the terminal shows."""
    lines = [
        f"Metadata catalog of {report['data_root']} ({report['generated_at']})",
        f"{len(report['distinct_keys'])} distinct keys, "
        f"{len(report['additional_metadata']['distinct_keys'])} under additional_metadata",
    ]
    for source, total in report["total_files_by_source"].items():
        st = report["status_by_source"][source]
        val = report["validation_by_source"][source]
        ev = report["expected_vs_collected_by_source"][source]
        lines.append("")
        lines.append(
            f"{source}: {total} files, {st['complete']} complete, {st['in-progress']} in progress, "
            f"{st['error']} error, {st['unknown']} unknown status; "
            f"{val['valid']} valid, {val['invalid']} fail the schema"
        )
        if val["missing_required"]:
            missing = ", ".join(f"{k} ({n})" for k, n in val["missing_required"].items())
            lines.append(f"  missing required fields: {missing}")
        if ev["missing_expected"]:
            missing = ", ".join(f"{k} ({n})" for k, n in ev["missing_expected"].items())
            lines.append(f"  expected keys not collected: {missing}")
        if ev["unexpected"]:
            extra = ", ".join(f"{k} ({n})" for k, n in ev["unexpected"].items())
            lines.append(f"  keys outside the schema: {extra}")
        for item in val["invalid_records"]:
            lines.append(f"  invalid: {item['path']}: {'; '.join(item['errors'][:3])}")
        for item in report["errors_by_source"][source]:
            lines.append(f"  {item['status']}: {item['path']}")
        for item in report.get("missing_volumes_by_source", {}).get(source, []):
            lines.append(f"  complete, but its volume is missing: {item['volume']}")
    if report["unreadable"]:
        lines.append("")
        lines.append(f"{len(report['unreadable'])} unreadable sidecars:")
        lines += [f"  {u['path']}: {u['error']}" for u in report["unreadable"]]
    return "\n".join(lines) + "\n"


def write_report(
    report: dict[str, Any], out_dir: Path | str | Location, *, stamp: str | None = None
) -> tuple[Path | Location, Path | Location]:
    """Write ``metadata_catalog_<YYYYmmdd_HHMMSS>.json`` and its ``.log``; return both.

    ``out_dir`` is a local folder (the files are paths), or a :class:`Location` of a data
    root (``settings.storage.root().location()``: on a bucket, two objects)."""
    stem = f"metadata_catalog_{stamp or time.strftime('%Y%m%d_%H%M%S')}"
    body, text = json.dumps(report, indent=2) + "\n", summary_text(report)
    if isinstance(out_dir, Location) and not out_dir.is_local:
        json_at, log_at = out_dir / f"{stem}.json", out_dir / f"{stem}.log"
        json_at.write_text(body)
        log_at.write_text(text)
        return json_at, log_at
    out = out_dir.path if isinstance(out_dir, Location) else Path(out_dir)
    json_path, log_path = out / f"{stem}.json", out / f"{stem}.log"
    atomic_write_text(json_path, body)
    atomic_write_text(log_path, text)
    return json_path, log_path


__all__ = ["build_report", "expected_keys", "required_keys", "summary_text", "write_report"]
