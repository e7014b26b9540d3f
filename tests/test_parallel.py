"""embrepro.parallel: tasks in worker processes give what plain calls give, in order, on one thread."""

import os
import time

import numpy as np
import pytest

from embrepro.parallel import imap_processes, map_processes


def _noisy_sum(seed: int, n: int) -> float:
    return float(np.random.default_rng(seed).standard_normal(n).sum())


def test_workers_give_the_results_of_plain_calls_in_task_order():
    tasks = [(seed, 10_000 + seed) for seed in range(7)]
    here = map_processes(_noisy_sum, tasks, processes=1)
    there = map_processes(_noisy_sum, tasks, processes=2)
    assert there == here == [_noisy_sum(*t) for t in tasks]


def test_order_is_kept_when_the_first_task_finishes_last():
    def slow_first(i):  # a closure, as a notebook defines it: sent by value
        time.sleep(0.6 if i == 0 else 0.0)
        return i, os.getpid()

    results = map_processes(slow_first, [(i,) for i in range(5)], processes=2)
    assert [i for i, _ in results] == [0, 1, 2, 3, 4]
    assert os.getpid() not in {pid for _, pid in results}  # they ran in workers
    assert len({pid for _, pid in results}) == 2  # both workers took tasks while the first one slept


def test_a_worker_runs_on_one_thread():
    def threads_seen():
        import torch
        from threadpoolctl import threadpool_info

        return torch.get_num_threads(), sorted({pool["num_threads"] for pool in threadpool_info()})

    for torch_threads, pools in map_processes(threads_seen, [()] * 2, processes=2):
        assert torch_threads == 1
        assert pools == [1]


def test_an_error_in_a_task_reaches_the_caller():
    def fails_on_three(i):
        if i == 3:
            raise KeyError(f"task {i} failed")
        return i

    with pytest.raises(KeyError, match="task 3 failed"):
        map_processes(fails_on_three, [(i,) for i in range(6)], processes=2)


def test_generator_tasks_are_read_only_a_few_ahead_of_the_workers():
    made = []

    def tasks():
        for i in range(20):
            made.append(i)
            yield (i,)

    def slow(i):  # long enough that the workers, not the dispatch, set the pace
        time.sleep(0.4)
        return i

    results = imap_processes(slow, tasks(), processes=2, total=20)
    first = next(results)
    assert first == 0
    # 2 * processes dispatched, 2 more sliced off for the next dispatch, then one per finished
    # task: 6 when the first result comes back; 10 leaves the caller two rounds (0.8 s) of delay
    assert len(made) <= 10
    assert [first, *results] == list(range(20))
    assert made == list(range(20))


@pytest.mark.parametrize("bad", [0, -1, 1.5, "2", True])
def test_bad_process_counts_are_refused_before_any_task_starts(bad):
    made = []

    def tasks():
        made.append(1)
        yield (1,)

    with pytest.raises(ValueError, match="processes must be a positive integer"):
        imap_processes(abs, tasks(), processes=bad)
    assert made == []


def test_each_workers_peak_memory_is_measured_in_the_worker():
    from embrepro.parallel import worker_peaks_mb

    def hold(megabytes):
        block = np.ones(megabytes * 131_072)  # 8-byte floats: `megabytes` MB, all touched
        return float(block.sum()), os.getpid()

    results = map_processes(hold, [(300,), (1,), (1,)], processes=2)
    peaks = worker_peaks_mb()
    assert {pid for _, pid in results} <= set(peaks) and os.getpid() not in peaks
    assert peaks[results[0][1]] >= 300  # the worker that held 300 MB says so
    assert all(peak > 20 for peak in peaks.values())  # a Python process with numpy, not zero
    map_processes(hold, [(1,)], processes=1)  # a task run here adds no worker
    assert worker_peaks_mb() == peaks


class _Recorder:
    def __init__(self):
        self.reported = {}

    def report(self, name, value, *, timing=False):
        self.reported[name] = (value, timing)
        return value


def test_the_cost_phrase_names_the_workers_or_says_there_were_none(monkeypatch):
    from embrepro import parallel

    own = parallel.own_peak_mb()
    monkeypatch.setattr(parallel, "_worker_peaks", {101: 512.4, 102: 1480.6})
    chapter = _Recorder()
    text = parallel.report_memory(chapter)
    assert text == (f"at most {chapter.reported['notebook_peak_memory_mb'][0]:,.0f} MB of memory in the "
                    "notebook's own process and at most 1,481 MB in each of its 2 worker processes")
    assert chapter.reported["notebook_peak_memory_mb"][0] >= own  # this process's own peak, never less
    assert chapter.reported["worker_peak_memory_mb"] == (1480.6, True)  # a timing: not compared across runs
    assert chapter.reported["workers_used"] == (2, True) and chapter.reported["memory_use"][0] == text

    monkeypatch.setattr(parallel, "_worker_peaks", {})
    chapter = _Recorder()
    assert parallel.report_memory(chapter).endswith(
        "in the notebook's own process, which trained every model itself (no worker processes)")
    assert chapter.reported["worker_peak_memory_mb"] == (0.0, True)


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="Linux's VmHWM")
def test_a_started_process_does_not_count_its_parents_memory_as_its_own():
    import subprocess
    import sys

    block = np.ones(600 * 131_072)  # this process now holds 600 MB more
    code = "from embrepro.parallel import own_peak_mb; print(own_peak_mb())"
    child = float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    assert child < 300  # a fresh Python with numpy: well under the parent's 600 MB (ru_maxrss says 600+)
    assert block.sum() > 0
