"""emingest.leases: one writer per volume across machines on an s3:// data root (moto)."""

from __future__ import annotations

import logging
import socket
import subprocess
import sys
import threading
import time

import pytest

from emingest.errors import RunInterrupted
from emingest.leases import Holder, held_lease, lease_key
from emingest.storage import S3Config, S3Root
from emingest.testing.s3_root import S3DataRoot

KEY = lease_key("local/v-1/v.json")


def _root(s3_root: S3DataRoot) -> S3Root:
    return S3Root(s3_root.url, S3Config(endpoint_url=s3_root.endpoint_url))


def _holder(root: S3Root) -> Holder | None:
    got = root.read_tagged(KEY)
    return Holder.parse(got[0]) if got else None


def test_a_second_writer_waits_until_the_first_releases(s3_root: S3DataRoot) -> None:
    root = _root(s3_root)
    assert KEY == ".locks/local/v-1/v.lease"
    order: list[str] = []
    first_in = threading.Event()
    release_first = threading.Event()

    def first() -> None:
        with held_lease(root, KEY, what="v", poll_s=0.05):
            order.append("first in")
            first_in.set()
            release_first.wait(10)
            order.append("first out")

    def second() -> None:
        first_in.wait(10)
        with held_lease(root, KEY, what="v", poll_s=0.05):
            order.append("second in")

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    first_in.wait(10)
    time.sleep(0.3)  # the second is polling now; it must not get in
    assert order == ["first in"]
    release_first.set()
    for t in threads:
        t.join(10)
    assert order == ["first in", "first out", "second in"]
    assert _holder(root) is None  # released: the object is gone


def test_a_live_holder_elsewhere_is_waited_for_and_a_stop_ends_the_wait(
    s3_root: S3DataRoot,
) -> None:
    root = _root(s3_root)
    other = Holder("another-host", 1, "t", time.time() + 600)
    assert root.write_if(KEY, other.encode(), etag=None) is not None
    stop = threading.Event()
    threading.Timer(0.3, stop.set).start()
    with (
        pytest.raises(RunInterrupted, match="another-host PID 1"),
        held_lease(root, KEY, what="v", poll_s=0.05, stop=stop),
    ):
        pass
    assert _holder(root) == other  # untouched


def test_an_expired_lease_elsewhere_is_taken_over(s3_root: S3DataRoot) -> None:
    root = _root(s3_root)
    root.write_if(KEY, Holder("another-host", 1, "t", time.time() - 1).encode(), etag=None)
    with held_lease(root, KEY, what="v", poll_s=0.05):
        holder = _holder(root)
        assert holder is not None and holder.host == socket.gethostname()


def test_a_dead_process_on_this_host_is_taken_over_before_its_lease_expires(
    s3_root: S3DataRoot, caplog: pytest.LogCaptureFixture
) -> None:
    root = _root(s3_root)
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    dead_pid = int(done.stdout)
    dead = Holder(socket.gethostname(), dead_pid, "t", time.time() + 600)
    root.write_if(KEY, dead.encode(), etag=None)
    stop = threading.Event()  # a wait would end in RunInterrupted, failing the test
    timer = threading.Timer(30, stop.set)
    timer.start()
    with (
        caplog.at_level(logging.INFO, logger="emingest.leases"),
        held_lease(root, KEY, what="v", poll_s=0.05, stop=stop),
    ):
        holder = _holder(root)
        assert holder is not None and holder.pid != dead_pid
    timer.cancel()
    messages = [r.getMessage() for r in caplog.records]
    assert not [m for m in messages if "waiting" in m], messages  # never waited for it
    assert any("took over the lease" in m for m in messages), messages


def test_the_holder_renews_its_lease(s3_root: S3DataRoot) -> None:
    root = _root(s3_root)
    with held_lease(root, KEY, what="v", ttl_s=0.6):  # renewed every 0.2 s
        first = _holder(root)
        assert first is not None
        later = first
        deadline = time.monotonic() + 30
        while later.expires == first.expires and time.monotonic() < deadline:
            time.sleep(0.05)
            later = _holder(root) or first
    assert later.token == first.token and later.expires > first.expires


def test_only_one_of_two_takers_of_a_stale_lease_wins(s3_root: S3DataRoot) -> None:
    root = _root(s3_root)
    root.write_if(KEY, b"not json: a torn or foreign object", etag=None)
    stale = root.read_tagged(KEY)
    assert stale is not None
    wins = [root.write_if(KEY, b"a", etag=stale[1]), root.write_if(KEY, b"b", etag=stale[1])]
    assert sum(w is not None for w in wins) == 1
