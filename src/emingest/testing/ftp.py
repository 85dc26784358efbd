"""A loopback anonymous FTP server (pyftpdlib) serving a folder, with the replicas' faults.

Shares the :class:`~emingest.testing.http.Faults` object of the HTTP replica it mirrors, so a
listing that omits a file omits it over both protocols, and ``stall_every``, ``reset_every``
and ``truncate_every`` break RETR transfers as they break HTTP bodies: halfway through, the
data connection stalls ``stall_s``, is reset (RST), or ends early with "226 Transfer complete".
Each RETR counts as one fault-eligible request.
"""

from __future__ import annotations

import logging
import socket
import struct
import threading
import time
from pathlib import Path
from typing import Any

from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.filesystems import AbstractedFS
from pyftpdlib.handlers import FTPHandler
from pyftpdlib.ioloop import IOLoop
from pyftpdlib.servers import ThreadedFTPServer

from emingest.testing.http import Faults


def _quiet_pyftpdlib() -> None:
    """Keep pyftpdlib from logging every session to stderr, unless someone configured it.

    pyftpdlib installs its own stderr handler at INFO when its logger has no handler; a
    NullHandler stops that, and WARNING keeps the replicas' sessions out of test reports.
    """
    log = logging.getLogger("pyftpdlib")
    if not log.handlers:
        log.addHandler(logging.NullHandler())
    if log.level == logging.NOTSET:
        log.setLevel(logging.WARNING)


class _FaultyProducer:
    """Wraps pyftpdlib's file producer: sends up to ``cut``, then stalls, resets or stops."""

    def __init__(
        self, inner: Any, handler: FTPHandler, faults: Faults, cut: int, mode: str
    ) -> None:
        self.inner = inner
        self.file = inner.file
        self.handler = handler
        self.faults = faults
        self.left = cut  # bytes to send before the fault
        self.mode = mode

    def more(self) -> bytes:
        if self.left > 0:
            data = self.inner.more()
            if len(data) > self.left:
                # give back what lies past the cut; it is sent after a stall
                self.file.seek(self.file.tell() - (len(data) - self.left))
                data = data[: self.left]
            self.left -= len(data)
            return bytes(data)
        if self.mode:
            self.faults.fire(self.mode)
        if self.mode == "stall":
            time.sleep(self.faults.stall_s)
            self.mode = ""
        elif self.mode == "reset":
            dc = self.handler.data_channel
            if dc is not None:
                # SO_LINGER 0 makes close() send RST instead of FIN: a "connection reset"
                dc.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                dc._resp = ("426 Connection closed; transfer aborted.", logging.debug)
                dc.close()
            return b""
        elif self.mode == "truncate":
            return b""
        return bytes(self.inner.more())


class FTPReplica:
    """Anonymous read-only FTP on 127.0.0.1, root ``root`` (``ftp.ebi.ac.uk``'s ``/``)."""

    host = "127.0.0.1"

    def __init__(self, root: Path, faults: Faults | None = None) -> None:
        self.root = Path(root)
        self.faults = faults or Faults()
        self.command_log: list[tuple[str, str]] = []
        """Every command the server received, as (verb, argument): tests check REST offsets."""
        self._server: ThreadedFTPServer | None = None
        self._thread: threading.Thread | None = None

    def _handler_class(self) -> type[FTPHandler]:
        faults = self.faults

        class _FS(AbstractedFS):
            def listdir(self, path: str) -> list[str]:
                return [n for n in super().listdir(path) if n not in faults.omit_from_listing]

        def push_dtp_data(
            handler: FTPHandler,
            data: Any,
            isproducer: bool = False,
            file: Any = None,
            cmd: str | None = None,
        ) -> None:
            if cmd == "RETR" and isproducer and file is not None:
                n = faults.next_request()
                mode = next(
                    (
                        name
                        for name, every in (
                            ("stall", faults.stall_every),
                            ("reset", faults.reset_every),
                            ("truncate", faults.truncate_every),
                        )
                        if Faults._hit(every, n)
                    ),
                    "",
                )
                if mode:
                    start = file.tell()
                    size = Path(file.name).stat().st_size
                    cut = max(1, (size - start) // 2)
                    data = _FaultyProducer(data, handler, faults, cut, mode)
            FTPHandler.push_dtp_data(handler, data, isproducer, file, cmd)

        command_log = self.command_log

        def pre_process_command(handler: FTPHandler, line: str, cmd: str, arg: str) -> None:
            command_log.append((cmd, arg))
            FTPHandler.pre_process_command(handler, line, cmd, arg)

        authorizer = DummyAuthorizer()
        authorizer.add_anonymous(str(self.root), perm="elr")
        attrs: dict[str, Any] = {
            "authorizer": authorizer,
            "abstracted_fs": _FS,
            "banner": "emingest FTP replica ready.",
            "passive_ports": None,
            "permit_foreign_addresses": False,
            # plain send() so that the faults can cut RETR bodies (sendfile bypasses producers)
            "use_sendfile": False,
            "push_dtp_data": push_dtp_data,
            "pre_process_command": pre_process_command,
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
        _quiet_pyftpdlib()
        # Each server gets its own IOLoop: pyftpdlib's default is one per process, so two
        # replicas would share it and closing one would close the other's sockets.
        self._server = ThreadedFTPServer((self.host, 0), self._handler_class(), ioloop=IOLoop())
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"handle_exit": False},
            daemon=True,
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
