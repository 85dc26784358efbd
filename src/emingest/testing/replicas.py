"""Every archive's loopback replica in one process: for ``emingest demo``, tests and trying
things offline.

    with ReplicaSet(Path("demo-replicas")) as replicas:
        print(replicas.endpoints())
        settings = load_settings(overrides={"sources": replicas.source_settings()})

The set is built from the source registry: a source names its replica in ``Source.replica``
("module:Class" of a :class:`Replica`), so a plug-in with a replica joins the demo too.
``source_settings()`` points every source at its replica through the same settings users would
edit, so the pipeline cannot tell a replica from the real archive.
"""

from __future__ import annotations

import contextlib
import importlib
from pathlib import Path
from typing import Any, ClassVar, Protocol

from emingest.sources import source_classes


class Replica(Protocol):
    """What the set needs of one archive's replica (``Source.replica`` names the class)."""

    demo_options: ClassVar[dict[str, Any]] = {}
    """Discover options that fit the default datasets to the replica's small data."""

    server: Any
    """The running replica itself (request logs, fault switches)."""

    def __init__(self, root: Path, scale: int) -> None: ...

    def endpoints(self) -> dict[str, str]:
        """What it serves, for people to point other clients at."""
        ...

    def source_settings(self) -> dict[str, Any]:
        """``[sources.<name>]`` keys that aim the source at the replica."""
        ...

    def start(self) -> None:
        self.server.start()

    def stop(self) -> None:
        self.server.stop()


def replica_classes() -> dict[str, type[Replica]]:
    """Source name -> its replica's class, for every registered source that has one."""
    out: dict[str, type[Replica]] = {}
    for name, cls in source_classes().items():
        if cls.replica:
            module_name, _, class_name = cls.replica.partition(":")
            out[name] = getattr(importlib.import_module(module_name), class_name)
    return out


def demo_options() -> dict[str, dict[str, Any]]:
    """Per source, the discover options that shrink its default datasets to replica size."""
    return {name: dict(cls.demo_options) for name, cls in replica_classes().items()}


class ReplicaSet:
    """Starts the replicas (small data by default; ``scale`` multiplies in-plane sizes);
    ``only`` limits them to some sources (default: every source that has a replica)."""

    def __init__(self, root: Path, *, scale: int = 1, only: tuple[str, ...] | None = None) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        s = max(1, int(scale))
        self.members: dict[str, Replica] = {
            name: cls(self.root / name, s)
            for name, cls in replica_classes().items()
            if only is None or name in only
        }
        self.replicas: dict[str, Any] = {n: m.server for n, m in self.members.items()}

    def start(self) -> ReplicaSet:
        try:
            for member in self.members.values():
                member.start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for member in self.members.values():
            with contextlib.suppress(Exception):
                member.stop()

    def __enter__(self) -> ReplicaSet:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def endpoints(self) -> dict[str, dict[str, str]]:
        """What each replica serves, by archive, for people to point other clients at."""
        return {name: m.endpoints() for name, m in self.members.items()}

    def source_settings(self) -> dict[str, dict[str, Any]]:
        """``[sources.*]`` settings that aim each source at its replica."""
        return {name: m.source_settings() for name, m in self.members.items()}


# -- the built-in archives' replicas (named by each source's ``replica``) ------------------------


class _ApiAndFilesReplica(Replica):
    """An archive with a JSON API and a file tree served over HTTP and FTP (IDR, EMPIAR)."""

    def endpoints(self) -> dict[str, str]:
        r = self.server
        return {"api": r.api_url, "files (http)": r.files_http_url, "files (ftp)": r.files_ftp_url}

    def source_settings(self) -> dict[str, Any]:
        return {"api_url": self.server.api_url, "files_url": self.server.files_http_url}


class IdrDemoReplica(_ApiAndFilesReplica):
    def __init__(self, root: Path, scale: int) -> None:
        from emingest.testing.idr import IDRReplica

        self.server = IDRReplica(root, image_shape=(24, 100 * scale, 140 * scale))


class EmpiarDemoReplica(_ApiAndFilesReplica):
    def __init__(self, root: Path, scale: int) -> None:
        from emingest.testing.empiar import EmpiarReplica

        self.server = EmpiarReplica(root, slice_shape=(160 * scale, 150 * scale))

    def source_settings(self) -> dict[str, Any]:
        # the listing fallback names a host too: the replica's FTP, never the archive's
        return {**super().source_settings(), "fallback_files_url": self.server.files_ftp_url}


class EpflDemoReplica(Replica):
    def __init__(self, root: Path, scale: int) -> None:
        from emingest.testing.epfl import EPFLReplica

        self.server = EPFLReplica(
            root,
            volume_shape=(48, 96 * scale, 128 * scale),
            subvolume_shape=(16, 48 * scale, 64 * scale),
        )

    def endpoints(self) -> dict[str, str]:
        return {"files (http)": self.server.base_url}

    def source_settings(self) -> dict[str, Any]:
        return {"base_url": self.server.base_url}


class OpenOrganelleDemoReplica(Replica):
    # The replica has 3 levels (s0-s2) where the real store has 9.
    demo_options: ClassVar[dict[str, Any]] = {"source_levels": "1-2"}

    def __init__(self, root: Path, scale: int) -> None:
        from emingest.testing.openorganelle import OpenOrganelleReplica

        self.server = OpenOrganelleReplica(shape=(70, 150 * scale, 160 * scale))

    def endpoints(self) -> dict[str, str]:
        oo = self.server
        return {
            "s3 endpoint": oo.endpoint_url,
            "store": f"s3://{oo.bucket}/{oo.dataset}/{oo.em_array_path}",
        }

    def source_settings(self) -> dict[str, Any]:
        return {"endpoint_url": self.server.endpoint_url}


class FlyEMDemoReplica(Replica):
    # The crop shrinks to fit the replica.
    demo_options: ClassVar[dict[str, Any]] = {"crop": 64}

    def __init__(self, root: Path, scale: int) -> None:
        from emingest.testing.flyem import FlyEMReplica

        self.server = FlyEMReplica(root)

    def endpoints(self) -> dict[str, str]:
        return {"dvid": self.server.dvid_url, "precomputed": self.server.precomputed_url}

    def source_settings(self) -> dict[str, Any]:
        return {"dvid_url": self.server.dvid_url, "precomputed_url": self.server.precomputed_url}


__all__ = ["Replica", "ReplicaSet", "demo_options", "replica_classes"]
