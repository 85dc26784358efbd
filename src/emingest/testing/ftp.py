"""A loopback anonymous FTP server (pyftpdlib) serving a folder, with the replicas' faults.

Shares the :class:`~emingest.testing.http.Faults` object of the HTTP replica it mirrors, so a
listing that omits a file omits it over both protocols.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.filesystems import AbstractedFS
from pyftpdlib.handlers import FTPHandler
from pyftpdlib.servers import ThreadedFTPServer

from emingest.testing.http import Faults


class FTPReplica:
    """Anonymous read-only FTP on 127.0.0.1, root ``root`` (``ftp.ebi.ac.uk``'s ``/``)."""

    host = "127.0.0.1"

    def __init__(self, root: Path, faults: Faults | None = None) -> None:
        self.root = Path(root)
        self.faults = faults or Faults()
        self._server: ThreadedFTPServer | None = None
        self._thread: threading.Thread | None = None

    def _handler_class(self) -> type[FTPHandler]:
        faults = self.faults

        class _FS(AbstractedFS):
            def listdir(self, path: str) -> list[str]:
                return [n for n in super().listdir(path) if n not in faults.omit_from_listing]

        authorizer = DummyAuthorizer()
        authorizer.add_anonymous(str(self.root), perm="elr")
        attrs: dict[str, Any] = {
            "authorizer": authorizer,
            "abstracted_fs": _FS,
            "banner": "emingest FTP replica ready.",
            "passive_ports": None,
            "permit_foreign_addresses": False,
        }
        return type("ReplicaFTPHandler", (FTPHandler,), attrs)

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("replica not started")
        return int(self._server.address[1])

    @property
    def url(self) -> str:
        return f"ftp://{self.host}:{self.port}"

    def start(self) -> FTPReplica:
        self._server = ThreadedFTPServer((self.host, 0), self._handler_class())
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"handle_exit": False}, daemon=True,
            name="FTPReplica",
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.close_all()
            self._server = None

    def __enter__(self) -> FTPReplica:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
