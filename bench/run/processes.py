"""Independent pieces of work in spawned processes that share this machine (``reproduce
--parallel-sets``, ``regress --jobs``).

``spawn`` (not ``fork``) so that it is safe with CUDA and with the threads torch and MLflow
start. Workers ignore Ctrl-C (the parent handles it) and run with a fixed number of torch
threads, so that N processes on a CPU share its cores instead of oversubscribing them.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
from typing import Any

import torch

from bench.core.memory import keep_freed_memory


def threads_per_process(device: torch.device, workers: int) -> int:
    """This process's torch threads split over ``workers`` processes on a CPU (at least 1);
    on an accelerator each process keeps them all (they only feed the device)."""
    threads = torch.get_num_threads()
    return max(1, threads // workers) if device.type == "cpu" else threads


def _start_worker(threads: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    keep_freed_memory()  # a spawned process starts with glibc's defaults
    torch.set_num_threads(threads)


def map_in_processes(
    fn: Callable[..., Any],
    calls: Sequence[tuple],
    workers: int,
    threads: int,
    on_done: Callable[[int, Any], None] | None = None,
) -> list[Any]:
    """``[fn(*args) for args in calls]``, computed ``workers`` calls at a time in spawned
    processes with ``threads`` torch threads each; ``on_done(index, result)`` runs in this
    process as each call ends. ``fn`` and the arguments must pickle (module-level functions).

    Raises:
        Whatever a call raised (the first failure), KeyboardInterrupt or ``Terminated`` from
        the caller's thread: the other processes are terminated first (work that checkpoints
        atomically loses nothing).
    """
    context = torch.multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(
        max_workers=workers, mp_context=context, initializer=_start_worker, initargs=(threads,)
    )
    futures = {pool.submit(fn, *args): index for index, args in enumerate(calls)}
    results: list[Any] = [None] * len(calls)
    try:
        pending = set(futures)
        while pending:
            done, pending = wait(pending, return_when=FIRST_EXCEPTION)
            for future in done:
                index = futures[future]
                results[index] = future.result()  # a call's failure is raised here
                if on_done is not None:
                    on_done(index, results[index])
    except BaseException:
        for process in list(getattr(pool, "_processes", {}).values()):
            process.terminate()
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()
    return results
