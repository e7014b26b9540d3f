"""Independent single-threaded models trained side by side, one per worker process.

Several chapters train many small models (one per arm and seed) that each use one core:
gensim with one worker thread (so that a seed repeats exactly) or a small LSTM that runs
slower on two threads. :func:`map_processes` runs such tasks ``processes`` at a time, each in
its own worker process with one thread, on joblib's process engine (loky). Functions defined
in a notebook can be passed as they are: loky sends them, with the globals they use, by value
(cloudpickle), so the notebook keeps its code.

A task gives the same result in a worker as in the notebook's process when it depends only on
its arguments and its own seeds (gensim's ``seed``, ``torch.manual_seed``) and runs on one
thread in both. The paragraph-vectors and SimCSE chapters check it: each trains one model again
in the notebook's own process and compares it bit for bit with the worker's; every chapter's
metrics must also equal its record's, which were made before the models moved to workers.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from embrepro import paths

__all__ = ["imap_processes", "map_processes"]


def _one_thread(function: Callable, args: tuple) -> Any:
    """Run ``function(*args)`` with one thread for BLAS, OpenMP and (if loaded) torch."""
    from threadpoolctl import threadpool_limits

    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(1)
    with threadpool_limits(limits=1):
        return function(*args)


def map_processes(function: Callable, tasks: Iterable[Sequence], *, processes: int | None = None,
                  total: int | None = None, desc: str | None = None) -> list:
    """``[function(*task) for task in tasks]``, computed ``processes`` tasks at a time.

    The list of :func:`imap_processes`'s results; see there.
    """
    return list(imap_processes(function, tasks, processes=processes, total=total, desc=desc))


def imap_processes(function: Callable, tasks: Iterable[Sequence], *, processes: int | None = None,
                   total: int | None = None, desc: str | None = None) -> Iterator:
    """``function(*task)`` for each task, yielded in the order of ``tasks``, ``processes`` at a time.

    ``processes`` defaults to :func:`embrepro.paths.threads` (the book's thread budget, two on
    the book's machine). With more than one, each task runs in a worker process limited to one
    thread (BLAS, OpenMP, torch), and the workers go on with the next tasks while the caller
    handles a result; with one, the tasks run here, one after another, as plain calls.
    ``tasks`` may be a generator: it is read only a few tasks ahead of the results, so a task's
    large arguments can be made when it is reached, and only the results not yet taken are held.
    A progress bar named ``desc`` (of ``total`` tasks, or ``len(tasks)``) advances as results
    are yielded. An exception in a task is raised here once the tasks in flight stop. Raises
    ValueError for a ``processes`` that is not a positive integer, before any task starts.
    """
    processes = paths.threads() if processes is None else processes
    if isinstance(processes, bool) or not isinstance(processes, int) or processes < 1:
        raise ValueError(f"processes must be a positive integer, got {processes!r}")
    if total is None and hasattr(tasks, "__len__"):
        total = len(tasks)  # type: ignore[arg-type]
    return _iterate(function, tasks, processes, total, desc)


def _iterate(function: Callable, tasks: Iterable[Sequence], processes: int, total: int | None,
             desc: str | None) -> Iterator:
    from tqdm.auto import tqdm

    with tqdm(total=total, desc=desc, disable=desc is None) as bar:
        if processes == 1:
            for task in tasks:
                yield function(*task)
                bar.update(1)
            return
        from joblib import Parallel, delayed, parallel_config

        # inner_max_num_threads: loky caps the workers' BLAS and OpenMP pools before they start;
        # max_nbytes=None: arrays are sent as copies, never as read-only memory maps
        with parallel_config(backend="loky", inner_max_num_threads=1):
            parallel = Parallel(n_jobs=processes, return_as="generator", max_nbytes=None)
            for result in parallel(delayed(_one_thread)(function, tuple(task)) for task in tasks):
                yield result
                bar.update(1)
