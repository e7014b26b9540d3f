"""Defect 3: kernels run with pinned threads and hash seed; `embrepro determinism` finds and
names a chapter whose metrics change between identical runs."""

import json

from conftest import save_cell, write_chapter
from embrepro.book import cli
from embrepro.book.runner import Runner, discover, kernel_environment
from embrepro.paths import threads


def test_threads_accessor(monkeypatch):
    monkeypatch.delenv("EMBREPRO_THREADS", raising=False)
    assert 1 <= threads() <= 2
    monkeypatch.setenv("EMBREPRO_THREADS", "3")
    assert threads() == 3
    monkeypatch.setenv("EMBREPRO_THREADS", "zero")
    try:
        threads()
    except ValueError as exc:
        assert "EMBREPRO_THREADS" in str(exc)
    else:
        raise AssertionError("a bad EMBREPRO_THREADS must be refused")


def test_kernels_get_a_fixed_hash_seed_and_thread_count_whatever_the_jobs(tiny_project, monkeypatch):
    monkeypatch.setenv("EMBREPRO_THREADS", "1")
    write_chapter(tiny_project / "notebooks" / "part", "envprobe", 'profile = "book"',
                  'import os\nenv = {v: float(os.environ[v]) for v in ("PYTHONHASHSEED", "OMP_NUM_THREADS", '
                  '"MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "EMBREPRO_THREADS")}\nh = float(hash("abc") % 1000)\n'
                  + save_cell("envprobe", '{**env, "hash": h}'), "title: Env\n")
    r = Runner(discover(tiny_project), log=lambda line: None)
    metrics = []
    for jobs in (1, 2):
        outcome = r.run(["envprobe"], jobs=jobs, force=True)[0]
        metrics.append(json.loads((outcome.folder / "result.json").read_text())["metrics"])
    assert metrics[0] == metrics[1]
    assert metrics[0]["PYTHONHASHSEED"] == 0 and metrics[0]["OMP_NUM_THREADS"] == 1
    assert metrics[0]["EMBREPRO_THREADS"] == 1 and metrics[0]["OPENBLAS_NUM_THREADS"] == 1
    with kernel_environment() as env:
        assert env["PYTHONHASHSEED"] == "0" and env["MKL_NUM_THREADS"] == "1"


def test_determinism_passes_a_deterministic_chapter_and_names_a_noisy_one(tiny_project, monkeypatch, capsys):
    write_chapter(tiny_project / "notebooks" / "part", "noisy", 'profile = "book"',
                  "import random, time\nvalue = random.random() + time.time_ns() % 1000  # no seed, and the clock\n"
                  + save_cell("noisy", '{"value": value, "fixed": 1.0}'), "title: Noisy\n")
    r = Runner(discover(tiny_project), log=lambda line: None)
    report = r.determinism(["producer", "noisy"], profile="smoke")
    assert report["producer"] == []
    assert len(report["noisy"]) == 1 and report["noisy"][0].startswith("metric value:")
    monkeypatch.setenv("EMBREPRO_ROOT", str(tiny_project))
    assert cli.main(["determinism", "noisy", "--profile", "smoke"]) == 1
    out = capsys.readouterr().out
    assert "DIFFERS  noisy" in out and "metric value" in out
    assert cli.main(["determinism", "producer", "--profile", "smoke"]) == 0
