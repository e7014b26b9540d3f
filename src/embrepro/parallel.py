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

A run record's ``peak_memory_mb`` is the largest of the notebook's process and its *finished*
children; the workers live on after their tasks, so they are usually not among those.
:func:`worker_peaks_mb` gives each worker's own peak, as the worker measured it after each task,
and :func:`report_memory` puts the notebook's and the workers' peaks in a chapter's Cost section.
"""

from __future__ import annotations

import os
import resource
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from embrepro import paths

__all__ = ["imap_processes", "map_processes", "own_peak_mb", "report_memory", "worker_peaks_mb"]

_worker_peaks: dict[int, float] = {}  # worker pid -> its peak resident memory (MB), from its last task


def worker_peaks_mb() -> dict[int, float]:
    """The peak resident memory, in MB, of each worker process that has run a task for this
    process so far, keyed by the worker's pid; empty when every task ran here (``processes=1``).
    A worker's peak is its own: the models and data of all the tasks it ran, one after another."""
    return dict(_worker_peaks)


def own_peak_mb() -> float:
    """This process's peak resident memory, in MB: Linux's ``VmHWM``, the high-water mark of the
    process's own memory since it started its program. ``getrusage``'s ``ru_maxrss`` is not used
    where ``VmHWM`` exists: a process started by fork and exec keeps the parent's resident size at
    the fork as its floor, so a worker started by a 600 MB notebook would report at least 600 MB."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def report_memory(chapter) -> str:
    """Report where a chapter's memory went, for its Cost section: ``notebook_peak_memory_mb`` (the
    notebook's own process), ``worker_peak_memory_mb`` (the largest worker's peak) and ``workers_used``,
    all as timings (they vary from run to run), and glue ``memory_use``, a phrase that completes
    "This run took N s, with ...". (The run record's ``peak_memory_mb`` is the largest ``ru_maxrss``
    of the notebook's process and of its *finished* children, which may or may not include the
    workers, and which starts at the size of the process that launched the kernel.)"""
    own = chapter.report("notebook_peak_memory_mb", own_peak_mb(), timing=True)
    peaks = worker_peaks_mb()
    largest = chapter.report("worker_peak_memory_mb", max(peaks.values(), default=0.0), timing=True)
    count = chapter.report("workers_used", len(peaks), timing=True)
    text = f"at most {own:,.0f} MB of memory in the notebook's own process"
    if count == 0:
        text += ", which trained every model itself (no worker processes)"
    else:
        text += f" and at most {largest:,.0f} MB in each of its {count} worker process{'es' if count > 1 else ''}"
    return chapter.report("memory_use", text)


def _one_thread(function: Callable, args: tuple) -> tuple[Any, int, float]:
    """Run ``function(*args)`` with one thread for BLAS, OpenMP and (if loaded) torch; return its
    result with this worker's pid and its peak resident memory so far (MB, :func:`own_peak_mb`)."""
    from threadpoolctl import threadpool_limits

    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(1)
    with threadpool_limits(limits=1):
        result = function(*args)
    return result, os.getpid(), own_peak_mb()


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
    ``tasks`` may be a generator: it is read as the workers become free, a few tasks ahead of
    those finished (joblib's ``2 * processes``; more if tasks take well under a second, which
    joblib then sends in batches), so a task's large arguments are made when it is nearly
    reached. The workers do not wait for the caller: results finished but not yet taken are
    held here, so keep results small (scores, vectors) and their inputs in the tasks.
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
            for result, pid, peak in parallel(delayed(_one_thread)(function, tuple(task)) for task in tasks):
                _worker_peaks[pid] = max(peak, _worker_peaks.get(pid, 0.0))
                yield result
                bar.update(1)
