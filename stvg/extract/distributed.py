"""Stage one on a dask.distributed cluster: one task per shard, each into its own parts.

Nothing here schedules or retries by itself: dask places the ``N`` shard tasks on its workers
(``--scheduler ADDRESS`` for a running cluster, ``--dask-workers N`` for a LocalCluster of N
single-threaded processes). Each task builds its own encoders and writes parts ``k-of-N``, so
workers never share a file; a rerun skips what any earlier run completed.
"""

from __future__ import annotations

import logging
from pathlib import Path

from stvg.extract.config import ExtractConfig
from stvg.extract.plan import Entry
from stvg.extract.runner import Summary
from stvg.progress import bar_disabled

log = logging.getLogger(__name__)


def extract_shard(
    config: ExtractConfig,
    entries: list[Entry],
    out: str,
    shard: tuple[int, int],
    skip_failed: bool,
) -> Summary:
    """One dask task: build encoders, open the store, extract shard ``k/N``."""
    from stvg.extract import make_manifest
    from stvg.extract.runner import build_encoders, extract_entries
    from stvg.features.store import create_store

    encoders = build_encoders(config)
    store = create_store(out, make_manifest(config, encoders.specs()))
    return extract_entries(store, entries, config, encoders, shard, skip_failed, progress=False)


def run_dask(
    config: ExtractConfig,
    entries: list[Entry],
    out: str | Path,
    scheduler: str | None,
    dask_workers: int | None,
    skip_failed: bool = False,
) -> Summary:
    """Run one shard task per worker and merge their summaries (tqdm counts finished shards)."""
    from dask.distributed import Client, LocalCluster, as_completed
    from tqdm import tqdm

    cluster = None
    if scheduler is None:
        cluster = LocalCluster(
            n_workers=dask_workers or 1,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
        )
        client = Client(cluster)
    else:
        client = Client(scheduler)
    try:
        n = dask_workers or max(1, len(client.scheduler_info()["workers"]))
        log.info("dask: %d shard tasks on %s", n, client.scheduler.address)
        futures = [
            client.submit(extract_shard, config, entries, str(out), (k, n), skip_failed, pure=False)
            for k in range(n)
        ]
        total = Summary()
        for future in tqdm(
            as_completed(futures), total=n, desc="dask shards", unit="shard", disable=bar_disabled()
        ):
            total = total.merge(future.result())
        return total
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
