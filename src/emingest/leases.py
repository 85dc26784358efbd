"""One writer per volume across machines on an ``s3://`` data root: a lease object.

``emingest.locks`` keeps two runs on one machine apart with ``flock``, which a bucket cannot
hold. Two drivers on different hosts writing one volume into one prefix would interleave
tiles and journals, so on object storage a volume is also guarded by a lease,
``<data_root>/.locks/<source>/<source_id>/<name>.lease`` (hidden: never a record), a small JSON
object naming its holder (host, PID, a random token) and when it expires.

S3's conditional writes make it safe without a lock service (AWS S3, MinIO and moto support
them): a lease is created with ``If-None-Match: *`` (one creator wins), renewed every third of
``ttl_s`` with ``If-Match: <its ETag>``, and taken over from a dead holder with ``If-Match`` of
the stale lease's ETag (one taker wins). A holder is dead when its lease has expired, or at once
when it names this host and a PID that no longer runs (a killed run re-run on the same machine
does not wait for the expiry). A lease that cannot be renewed (taken over after a stall longer
than ``ttl_s``) is logged as lost.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from emingest.errors import DataRootError, RunInterrupted
from emingest.storage import S3Root

log = logging.getLogger(__name__)

LEASE_SUFFIX = ".lease"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


@dataclass(frozen=True)
class Holder:
    host: str
    pid: int
    token: str
    expires: float

    @classmethod
    def parse(cls, data: bytes) -> Holder | None:
        try:
            d: dict[str, Any] = json.loads(data)
            return cls(str(d["host"]), int(d["pid"]), str(d["token"]), float(d["expires"]))
        except (ValueError, KeyError, TypeError):
            return None  # a torn or foreign object: treated as stale

    def encode(self) -> bytes:
        return json.dumps(self.__dict__).encode("utf-8")

    def is_dead(self, now: float) -> bool:
        if now > self.expires:
            return True
        return self.host == socket.gethostname() and not _pid_alive(self.pid)

    def __str__(self) -> str:
        return f"{self.host} PID {self.pid}"


@contextlib.contextmanager
def held_lease(
    root: S3Root,
    key: str,
    *,
    what: str,
    ttl_s: float = 60.0,
    poll_s: float = 2.0,
    stop: threading.Event | None = None,
) -> Iterator[None]:
    """Hold the lease ``key`` of ``root`` for the ``with`` block, waiting while a live holder
    has it (``RunInterrupted`` when ``stop`` is set meanwhile)."""
    token = uuid.uuid4().hex
    me = socket.gethostname(), os.getpid()
    stop = stop or threading.Event()

    def mine() -> bytes:
        return Holder(me[0], me[1], token, time.time() + ttl_s).encode()

    etag = _acquire(root, key, mine, what=what, poll_s=poll_s, stop=stop)
    renewer_stop = threading.Event()
    state = {"etag": etag}

    def renew() -> None:
        while not renewer_stop.wait(ttl_s / 3):
            try:
                new = root.write_if(key, mine(), etag=state["etag"])
            except DataRootError as err:  # an outage: try again at the next beat
                log.warning("%s: could not renew the lease %s: %s", what, key, err)
                continue
            if new is None:
                log.error("%s: lost the lease %s (another run took it over)", what, key)
                return
            state["etag"] = new

    renewer = threading.Thread(target=renew, name="emingest-lease", daemon=True)
    renewer.start()
    try:
        yield
    finally:
        renewer_stop.set()
        renewer.join()
        try:
            current = root.read_tagged(key)
            if current is not None and current[1] == state["etag"]:
                root.delete(key)
        except DataRootError as err:  # it expires by itself
            log.warning("%s: could not release the lease %s: %s", what, key, err)


def _acquire(
    root: S3Root,
    key: str,
    mine: Any,
    *,
    what: str,
    poll_s: float,
    stop: threading.Event,
) -> str:
    told = False
    while True:
        etag = root.write_if(key, mine(), etag=None)
        if etag is not None:
            return etag
        current = root.read_tagged(key)
        if current is None:
            continue  # released between our write and our read
        holder = Holder.parse(current[0])
        if holder is None or holder.is_dead(time.time()):
            etag = root.write_if(key, mine(), etag=current[1])
            if etag is not None:
                log.info("%s: took over the lease of %s (it had ended)", what, holder or "?")
                return etag
            continue  # another taker won; look again
        if not told:
            log.warning(
                "%s: being ingested by %s (lease %s); waiting for it",
                what,
                holder,
                root.url_of(key),
            )
            told = True
        if stop.wait(poll_s):
            raise RunInterrupted(f"{what}: stopped while waiting for {holder}")


def lease_key(record_key: str) -> str:
    """The lease of the volume whose record is ``record_key`` (relative to the data root)."""
    stem = record_key.rsplit(".", 1)[0]
    return f".locks/{stem}{LEASE_SUFFIX}"


__all__ = ["Holder", "held_lease", "lease_key"]
