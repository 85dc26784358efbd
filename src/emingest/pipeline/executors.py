"""Where region tasks run: threads of this process, or a Dask cluster.

Both take the same :class:`~emingest.pipeline.tasks.RegionTask` list and call ``on_done(task,
nbytes)`` once per finished task; the first failure cancels the rest and is raised. The
thread executor calls ``on_done`` in the worker thread, the Dask one in the driver as results
come back: either way the driver's journal, digest order and progress see every tile once.
``extra`` callables (the digest of a local source) run in this process on both.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, Executor, Future, ThreadPoolExecutor, wait

from emingest.config import PipelineSettings
from emingest.dask_cluster import DaskClient
from emingest.errors import RunInterrupted
from emingest.pipeline.tasks import RegionTask, VolumeContext, VolumePlan, run_in_worker, run_region

log = logging.getLogger(__name__)

OnDone = Callable[[RegionTask, int], None]


class ThreadRegionExecutor:
    """Tasks on a ``concurrent.futures`` executor in this process, sharing the driver's open
    reader and writer (numpy, codecs and I/O release the GIL)."""

    remote = False
    """Tasks see this process's reader, so a local digest task can read the source."""

    def __init__(
        self, executor: Executor, *, own: bool, stop: threading.Event | None = None
    ) -> None:
        self.executor = executor
        self._own = own
        self.stop = stop or threading.Event()
        """Set (Ctrl-C): tasks not started yet end at once with :class:`RunInterrupted`."""

    def run(
        self,
        ctx: VolumeContext,
        tasks: Sequence[RegionTask],
        on_done: OnDone,
        extra: Sequence[Callable[[], None]] = (),
    ) -> None:
        def one(task: RegionTask) -> None:
            if self.stop.is_set():
                raise RunInterrupted("interrupted")
            on_done(task, run_region(task, ctx))

        futures: list[Future[None]] = [self.executor.submit(f) for f in extra]
        futures += [self.executor.submit(one, t) for t in tasks]
        done, pending = wait(futures, return_when=FIRST_EXCEPTION)
        failed = next((f for f in done if f.exception() is not None), None)
        if failed is None:
            return
        for f in pending:
            f.cancel()
        wait(pending)
        raise failed.exception()  # type: ignore[misc]

    def close(self) -> None:
        if self._own:
            self.executor.shutdown(wait=True, cancel_futures=True)


class DaskRegionExecutor:
    """Tasks on a Dask distributed cluster: a LocalCluster of ``workers`` single-threaded
    processes that emingest starts (``scheduler = "local"``), or the scheduler at an address
    (``tcp://host:8786``). Each task opens the source and the store in its worker; the output
    folder must be the same path for every worker (one machine, or a shared file system)."""

    remote = True

    def __init__(
        self,
        settings: PipelineSettings,
        stop: threading.Event | None = None,
        dask: DaskClient | None = None,
    ) -> None:
        self.stop = stop or threading.Event()
        self._own = dask is None  # a client lent by the caller (``emingest run``) stays open
        self._dask = dask if dask is not None else DaskClient(settings)
        self.client = self._dask.client
        log.info("Dask executor: %s", str(self.client))  # formatted now: it changes at close

    def run(
        self,
        ctx: VolumeContext,
        tasks: Sequence[RegionTask],
        on_done: OnDone,
        extra: Sequence[Callable[[], None]] = (),
    ) -> None:
        from distributed import as_completed

        plan: VolumePlan = ctx.plan
        # ``extra`` (the digest of a local source) runs in a thread of the driver, next to the
        # cluster's tasks: the driver has the source open and reads it from the page cache.
        local = ThreadPoolExecutor(1, thread_name_prefix="emingest-driver") if extra else None
        side = [local.submit(f) for f in extra] if local is not None else []
        # The plan travels with every task (a few KB): nothing a dying worker held is needed
        # to rerun a task elsewhere.
        futures = {
            self.client.submit(run_in_worker, plan, t, pure=False, key=_key(plan, t)): t
            for t in tasks
        }
        try:
            for future in as_completed(futures):
                if self.stop.is_set():
                    raise RunInterrupted("interrupted")
                if future.status != "finished":
                    future.result()  # raises the task's error
                on_done(futures[future], int(future.result()))
                failed = next((f for f in side if f.done() and f.exception() is not None), None)
                if failed is not None:
                    failed.result()
            for f in side:
                f.result()
        except BaseException:
            self.client.cancel(list(futures))
            for f in side:
                f.cancel()
            raise
        finally:
            if local is not None:
                local.shutdown(wait=True)

    def close(self) -> None:
        if self._own:
            self._dask.close()


RegionExecutor = ThreadRegionExecutor | DaskRegionExecutor


def _key(plan: VolumePlan, task: RegionTask) -> str:
    idx = "-".join(str(i) for i in task.idx)
    return f"emingest-{task.kind}-{plan.label}-l{task.level}-{idx}-{id(task):x}"


def region_executor(
    settings: PipelineSettings,
    executor: Executor | None,
    stop: threading.Event | None = None,
    dask: DaskClient | None = None,
) -> RegionExecutor:
    """The executor ``settings`` name; a given ``concurrent.futures`` executor wins. ``stop``
    (set on Ctrl-C) ends the tasks not started yet; ``dask``, a client lent for Dask."""
    if executor is not None:
        return ThreadRegionExecutor(executor, own=False, stop=stop)
    if settings.executor == "dask":
        return DaskRegionExecutor(settings, stop, dask)
    pool = ThreadPoolExecutor(settings.workers, thread_name_prefix="emingest-region")
    return ThreadRegionExecutor(pool, own=True, stop=stop)
