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


def test_generator_tasks_are_read_only_a_few_ahead():
    made = []

    def tasks():
        for i in range(40):
            made.append(i)
            yield (i,)

    results = imap_processes(abs, tasks(), processes=2, total=40)
    first = next(results)
    assert first == 0
    assert len(made) < 40  # the rest are made as the workers need them
    assert [first, *results] == list(range(40))
    assert made == list(range(40))


@pytest.mark.parametrize("bad", [0, -1, 1.5, "2", True])
def test_bad_process_counts_are_refused_before_any_task_starts(bad):
    made = []

    def tasks():
        made.append(1)
        yield (1,)

    with pytest.raises(ValueError, match="processes must be a positive integer"):
        imap_processes(abs, tasks(), processes=bad)
    assert made == []
