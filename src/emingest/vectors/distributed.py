"""``embed --executor dask``: the blocks of a volume as tasks on a Dask cluster.

The pipeline's region executor (:mod:`emingest.pipeline.executors`) runs region tasks that
write into a store; an embedding block is a different task (read patches, embed them, return
vectors), and the vectors layer does not import the pipeline. So embedding has its own small
Dask path with the same settings and the same cluster choice:

* ``pipeline.scheduler = "local"``: a LocalCluster of ``pipeline.workers`` single-threaded
  processes, started for the ``embed`` run; else the scheduler at that address
  (``tcp://host:8786``), whose workers must have emingest installed and reach the data root
  (the same folder, a shared file system, or the bucket with credentials in their
  environment).
* Each task is self-contained: the volume level's :class:`~emingest.storage.Location`, the
  grid, the :class:`~emingest.vectors.embed.EncoderSpec` and one block. The worker opens the
  level and builds the embedder itself (a learned embedder loads its weights in the worker;
  both are kept per process for the next block) and returns the block's vectors.
* The driver writes each returned block into the store and journals it, as the thread pool
  does: the store, the journal, the resume and the vectors (bit for bit) do not depend on the
  executor.
"""

from __future__ import annotations

import logging
import threading
import uuid
from typing import TYPE_CHECKING, Any

import numpy as np

from emingest.dask_cluster import DaskClient

if TYPE_CHECKING:
    from emingest.config import PipelineSettings, Settings
    from emingest.journal import TileJournal
    from emingest.progress import Progress
    from emingest.storage import Location
    from emingest.vectors.embed import EncoderSpec
    from emingest.vectors.grid import PatchGrid
    from emingest.vectors.store import EmbeddingStore

log = logging.getLogger(__name__)

_lock = threading.Lock()
_encoders: dict[Any, Any] = {}
_levels: dict[Any, Any] = {}


def _cached(cache: dict[Any, Any], key: Any, make: Any, keep: int) -> Any:
    with _lock:
        if key in cache:
            return cache[key]
    value = make()
    with _lock:
        while len(cache) >= keep:
            cache.pop(next(iter(cache)))
        cache[key] = value
    return value


def embed_block_task(
    level: Location,
    grid: PatchGrid,
    spec: EncoderSpec,
    norm: tuple[float, float],
    batch: int,
    iz: int,
    band: int,
    session: str = "",
    run: str = "",
) -> np.ndarray:
    """In a worker: the vectors [rows, gx, dim] of block (``iz``, ``band``).

    The embedder is kept for the ``session`` (one ``embed`` command), the opened level for the
    ``run`` (one volume): a long-lived cluster never reuses a model whose weights file changed
    since, or a level re-ingested since."""
    from emingest.vectors.embed import block_vectors
    from emingest.vectors.zarr_io import open_level

    encoder = _cached(_encoders, (spec, session), spec.build, keep=2)
    array = _cached(_levels, (level, run), lambda: open_level(level), keep=1)
    return block_vectors(array, grid, encoder, iz, band, norm, batch)


class DaskBlocks:
    """A Dask client (and the LocalCluster it started) for the blocks of an ``embed`` run."""

    def __init__(self, settings: PipelineSettings, dask: DaskClient | None = None) -> None:
        self._own = dask is None  # a client lent by ``emingest run`` stays open
        self._dask = dask if dask is not None else DaskClient(settings)
        self.client = self._dask.client
        self.session = uuid.uuid4().hex
        log.info("Dask executor for embedding: %s", str(self.client))  # as it is now

    def embed_blocks(
        self,
        settings: Settings,
        store: EmbeddingStore,
        volume: Location,
        grid: PatchGrid,
        spec: EncoderSpec,
        journal: TileJournal,
        blocks: list[tuple[int, int]],
        norm: tuple[float, float],
        progress: Progress,
        label: str,
    ) -> None:
        from distributed import as_completed

        from emingest.vectors.embed import block_done, blocks_to_do

        todo = blocks_to_do(grid, journal, blocks, progress, label)
        level = volume / grid.level_path
        batch = settings.embed.batch_size
        run = uuid.uuid4().hex
        futures = {
            self.client.submit(
                embed_block_task,
                level,
                grid,
                spec,
                norm,
                batch,
                iz,
                band,
                self.session,
                run,
                pure=False,
                key=f"emingest-embed-{run[:12]}-{iz}-{band}",
            ): (iz, band)
            for iz, band in todo
        }
        try:
            for future in as_completed(futures):
                vectors = future.result()  # raises the task's error
                iz, band = futures[future]
                block_done(store, grid, journal, iz, band, vectors, progress, label)
                future.release()
        except BaseException:
            self.client.cancel(list(futures))
            raise

    def close(self) -> None:
        if self._own:
            self._dask.close()


__all__ = ["DaskBlocks", "embed_block_task"]
