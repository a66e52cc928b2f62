"""The server's memory by process: each worker's RSS, which is what a worker's caches and
queues cost, apart from the supervisor's."""

from __future__ import annotations

import contextlib

import psutil


def rss_by_process(processes: list[psutil.Process]) -> dict[str, float]:
    """MiB per process of one `slotrush serve` tree: the first is "supervisor" when it has
    workers (else "worker-1"); its workers are "worker-1".. in start order. multiprocessing's
    resource tracker is no worker and is left out."""
    if not processes:
        return {}
    root, children = processes[0], processes[1:]
    workers = sorted((p for p in children if not _is_resource_tracker(p)), key=_created)
    named = [("supervisor", root)] if workers else []
    named += [(f"worker-{i}", p) for i, p in enumerate(workers or [root], start=1)]
    found: dict[str, float] = {}
    for name, process in named:
        with contextlib.suppress(psutil.Error):
            found[name] = round(process.memory_info().rss / 2**20, 1)
    return found


def _is_resource_tracker(process: psutil.Process) -> bool:
    try:
        return any("resource_tracker" in part for part in process.cmdline())
    except psutil.Error:
        return False


def _created(process: psutil.Process) -> float:
    try:
        return process.create_time()
    except psutil.Error:
        return 0.0
