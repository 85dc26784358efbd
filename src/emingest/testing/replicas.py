"""All five archive replicas in one process: for ``emingest demo``, tests and trying things offline.

    with ReplicaSet(Path("demo-replicas")) as replicas:
        print(replicas.endpoints())
        settings = load_settings(overrides={"sources": replicas.source_settings()})

``source_settings()`` points every source at its replica through the same settings users would
edit, so the pipeline cannot tell a replica from the real archive.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from emingest.testing.empiar import EmpiarReplica
from emingest.testing.epfl import EPFLReplica
from emingest.testing.flyem import FlyEMReplica
from emingest.testing.idr import IDRReplica
from emingest.testing.openorganelle import OpenOrganelleReplica

ARCHIVES = ("idr", "empiar", "epfl", "openorganelle", "flyem")


class ReplicaSet:
    """Starts the replicas (small data by default; ``scale`` multiplies in-plane sizes)."""

    def __init__(self, root: Path, *, scale: int = 1, only: tuple[str, ...] = ARCHIVES) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        s = max(1, int(scale))
        self.replicas: dict[str, Any] = {}
        if "idr" in only:
            self.replicas["idr"] = IDRReplica(self.root / "idr", image_shape=(24, 100 * s, 140 * s))
        if "empiar" in only:
            self.replicas["empiar"] = EmpiarReplica(
                self.root / "empiar", slice_shape=(160 * s, 150 * s)
            )
        if "epfl" in only:
            self.replicas["epfl"] = EPFLReplica(
                self.root / "epfl",
                volume_shape=(48, 96 * s, 128 * s),
                subvolume_shape=(16, 48 * s, 64 * s),
            )
        if "openorganelle" in only:
            self.replicas["openorganelle"] = OpenOrganelleReplica(shape=(70, 150 * s, 160 * s))
        if "flyem" in only:
            self.replicas["flyem"] = FlyEMReplica(self.root / "flyem")

    def start(self) -> ReplicaSet:
        try:
            for replica in self.replicas.values():
                replica.start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for replica in self.replicas.values():
            with contextlib.suppress(Exception):
                replica.stop()

    def __enter__(self) -> ReplicaSet:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def endpoints(self) -> dict[str, dict[str, str]]:
        """What each replica serves, by archive, for people to point other clients at."""
        r = self.replicas
        out: dict[str, dict[str, str]] = {}
        if "idr" in r:
            out["idr"] = {
                "api": r["idr"].api_url,
                "files (http)": r["idr"].files_http_url,
                "files (ftp)": r["idr"].files_ftp_url,
            }
        if "empiar" in r:
            out["empiar"] = {
                "api": r["empiar"].api_url,
                "files (http)": r["empiar"].files_http_url,
                "files (ftp)": r["empiar"].files_ftp_url,
            }
        if "epfl" in r:
            out["epfl"] = {"files (http)": r["epfl"].base_url}
        if "openorganelle" in r:
            oo = r["openorganelle"]
            out["openorganelle"] = {
                "s3 endpoint": oo.endpoint_url,
                "store": f"s3://{oo.bucket}/{oo.dataset}/{oo.em_array_path}",
            }
        if "flyem" in r:
            out["flyem"] = {"dvid": r["flyem"].dvid_url, "precomputed": r["flyem"].precomputed_url}
        return out

    def source_settings(self) -> dict[str, dict[str, Any]]:
        """``[sources.*]`` settings that aim each source at its replica."""
        r = self.replicas
        out: dict[str, dict[str, Any]] = {}
        if "idr" in r:
            out["idr"] = {"api_url": r["idr"].api_url, "files_url": r["idr"].files_http_url}
        if "empiar" in r:
            out["empiar"] = {
                "api_url": r["empiar"].api_url,
                "files_url": r["empiar"].files_http_url,
                # the listing fallback names a host too: the replica's FTP, never the archive's
                "fallback_files_url": r["empiar"].files_ftp_url,
            }
        if "epfl" in r:
            out["epfl"] = {"base_url": r["epfl"].base_url}
        if "openorganelle" in r:
            out["openorganelle"] = {"endpoint_url": r["openorganelle"].endpoint_url}
        if "flyem" in r:
            out["flyem"] = {
                "dvid_url": r["flyem"].dvid_url,
                "precomputed_url": r["flyem"].precomputed_url,
            }
        return out
