"""`embrepro run`: progress lines on stderr, and the longest chapters started first under --jobs."""

from __future__ import annotations

import json
from concurrent.futures import Future

from conftest import PRODUCER_BODY, write_chapter
from embrepro.book import cli
from embrepro.book import runner as runner_module
from embrepro.book.runner import Runner, discover, expected_runtime, longest_first


def _record(root, chapter, profile, seconds):
    path = root / "results" / chapter / f"{profile}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"runtime_s": seconds}))


def test_progress_goes_to_stderr_one_line_per_chapter(tiny_project, monkeypatch, capsys):
    monkeypatch.setenv("EMBREPRO_ROOT", str(tiny_project))
    assert cli.main(["run", "consumer", "--profile", "smoke"]) == 0
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.startswith("[")]
    assert [line.split(" s (")[0].rsplit(" ", 1)[0] for line in lines] == ["[1/2] ran producer:smoke",
                                                                         "[2/2] ran consumer:smoke"]
    assert "elapsed" in lines[-1] and "[1/2]" not in captured.out
    assert cli.main(["run", "consumer", "--profile", "smoke", "--dry-run"]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""  # a dry run's output is only its decisions
    assert [line.split()[:2] for line in captured.out.splitlines()] == [["hit", "producer"], ["hit", "consumer"]]


def test_expected_runtime_prefers_this_machines_last_run_then_the_recorded_one(tiny_project, monkeypatch):
    monkeypatch.setenv("EMBREPRO_ROOT", str(tiny_project))
    assert expected_runtime("producer", "book") is None
    _record(tiny_project, "producer", "book", 500.0)
    assert expected_runtime("producer", "book") == 500.0
    Runner(discover(tiny_project), log=lambda line: None).run(["producer"], profile="book")
    assert 0 < expected_runtime("producer", "book") < 500.0  # the newest run in _runs/ wins


def test_jobs_start_unknown_then_longest_chapters_first(tiny_project, monkeypatch):
    monkeypatch.setenv("EMBREPRO_ROOT", str(tiny_project))
    for name, x in (("producer2", 3.0), ("producer3", 4.0)):
        write_chapter(tiny_project / "notebooks" / "part", name, f'profile = "book"\nx = {x}\nfail = False',
                      PRODUCER_BODY.replace('"producer"', f'"{name}"'), f"title: {name}\n")
    _record(tiny_project, "producer", "book", 10.0)
    _record(tiny_project, "producer2", "book", 90.0)
    assert longest_first(["producer", "producer2", "producer3"], "book") == ["producer3", "producer2", "producer"]

    started = []

    class InOrderPool:  # runs each submitted chapter at once, in this process, and notes the order
        def __init__(self, max_workers, mp_context):
            assert max_workers == 2

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def submit(self, fn, *args):
            started.append(args[1])
            future = Future()
            future.set_result(fn(*args))
            return future

    monkeypatch.setattr(runner_module, "ProcessPoolExecutor", InOrderPool)
    progress = []
    outcomes = Runner(discover(tiny_project), log=lambda line: None).run(
        ["producer", "producer2", "producer3"], profile="book", jobs=2,
        progress=lambda o, done, total, elapsed: progress.append((o.chapter, done, total)))
    assert started == ["producer3", "producer2", "producer"]
    assert [o.chapter for o in outcomes] == ["producer", "producer2", "producer3"]  # reported in name order
    assert {o.status for o in outcomes} == {"ran"}
    assert [p[1:] for p in progress] == [(1, 3), (2, 3), (3, 3)]
