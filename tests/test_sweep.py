"""`embrepro sweep`: a grid of parameters and seeds on a real Dask LocalCluster (two worker processes).

A toy chapter in a temporary project (``EMBREPRO_ROOT``) stands in for a real one: its one claim
and its metrics are simple functions of ``scale`` and ``seed``, so the table's values can be checked
by hand; ``scale=3`` makes the notebook raise and ``scale=4`` kills the worker process running it.
"""

from __future__ import annotations

import csv
import json

import pytest

from conftest import claim_code, save_cell, write_chapter
from embrepro.book import cli
from embrepro.book.runner import ParameterError, discover
from embrepro.book.sweep import parse_grid, plan_tasks, split_values

TOY_BODY = """
import os, signal
if scale == 4:
    os.kill(os.getppid(), signal.SIGKILL)  # the kernel's parent is the Dask worker
if scale == 3:
    raise ValueError(f"scale {scale} is too large for this toy")
value = scale * 10 + seed
""" + save_cell("toy", '{"value": value, "constant": 1.0}',
                "[" + claim_code("big", "value beats 15", "value", '"reproduced" if value > 15 else "not reproduced"')
                + "]")

TOY_SPEC = """title: Toy
parameters:
  scale: {min: 0, max: 10}
  seed: {min: 0}
  n_seeds: {min: 1}
profiles:
  smoke: {n_seeds: 2}
"""


@pytest.fixture
def toy_project(tiny_project, monkeypatch):
    write_chapter(tiny_project / "notebooks" / "part", "toy",
                  'profile = "book"\nseed = 0\nn_seeds = 1\nscale = 1', TOY_BODY, TOY_SPEC)
    monkeypatch.setenv("EMBREPRO_ROOT", str(tiny_project))
    monkeypatch.setenv("EMBREPRO_THREADS", "1")
    return tiny_project


def read_rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_grid_values_and_seed_spacing(toy_project):
    assert split_values("1,2,[3, 4],'a,b'") == ["1", "2", "[3, 4]", "'a,b'"]
    assert parse_grid(["scale=1,2", "label=x"]) == {"scale": ["1", "2"], "label": ["x"]}
    for bad in (["scale"], ["scale=1,,2"], ["scale=1,1"], ["scale=1", "scale=2"]):
        with pytest.raises(ParameterError):
            parse_grid(bad)
    spec = discover(toy_project)["toy"]
    tasks = plan_tasks(spec, "smoke", {"scale": ["1", "2"]}, 3)
    # n_seeds is 2 at the smoke profile: a run uses seeds seed and seed+1, so the sweep's seeds are 0, 2, 4
    assert [(t.values["scale"], t.values["seed"]) for t in tasks] == [(1, 0), (1, 2), (1, 4), (2, 0), (2, 2), (2, 4)]
    assert [(t.values["seed"]) for t in plan_tasks(spec, "book", {"scale": ["1"]}, 2)] == [0, 1]
    assert [t.overrides for t in plan_tasks(spec, "book", {"scale": ["5"]}, None)] == [{"scale": "5"}]


@pytest.mark.parametrize("argv, message", [
    (["--grid", "nope=1,2"], "no parameter 'nope'"),
    (["--grid", "scale=1,11"], "at most 10"),
    (["--grid", "scale=1,abc"], "expects int"),
    (["--grid", "scale=1", "--grid", "seed=1", "--seeds", "2"], "not both"),
    ([], "nothing to sweep"),
    (["--grid", "scale=1", "--threads", "0"], "--threads must be at least 1"),
])
def test_bad_points_exit_2_before_anything_runs(toy_project, capsys, argv, message):
    assert cli.main(["sweep", "toy", "--profile", "smoke", *argv]) == 2
    assert message in capsys.readouterr().err
    assert not (toy_project.parent / "runs").exists() and not (toy_project / "_build").exists()


def test_seeds_need_a_seed_parameter(toy_project, capsys):
    assert cli.main(["sweep", "producer", "--grid", "x=1,2", "--seeds", "2"]) == 2
    assert "no 'seed' parameter" in capsys.readouterr().err
    assert not (toy_project.parent / "runs").exists()


def test_sweep_on_a_local_cluster_reports_failures_keeps_the_rest_and_reuses_the_cache(toy_project, capsys):
    argv = ["sweep", "toy", "--profile", "smoke", "--grid", "scale=1,2,3,4", "--seeds", "2", "--workers", "2"]
    assert cli.main(argv) == 1
    captured = capsys.readouterr()
    folder = toy_project / "_build" / "sweeps" / "toy" / "smoke-scale=1,2,3,4-seeds2"
    rows = read_rows(folder / "sweep.csv")
    got = {(r["scale"], r["seed"]): r for r in rows}
    assert list(got) == [(s, d) for s in "1234" for d in "02"]  # task order, seeds spaced by n_seeds=2
    for scale in (1, 2):
        for seed in (0, 2):
            row = got[(str(scale), str(seed))]
            assert row["status"] == "ran" and row["cache_hit"] == "False" and not row["error"]
            assert float(row["metric:value"]) == scale * 10 + seed and float(row["metric:constant"]) == 1.0
            assert row["claim:big"] == ("reproduced" if scale * 10 + seed > 15 else "not reproduced")
            result = json.loads((toy_project.parent / "runs" / "toy" / row["folder"].rsplit("/", 1)[-1]
                                 / "result.json").read_text())
            assert result["parameters"]["scale"] == scale and result["parameters"]["seed"] == seed
            assert float(row["runtime_s"]) == result["runtime_s"]
    for seed in ("0", "2"):
        raised, killed = got[("3", seed)], got[("4", seed)]
        assert raised["status"] == "failed" and "scale 3 is too large" in raised["error"]
        kept = raised["error"].rsplit("kept in ", 1)[-1]
        assert kept.startswith(str(toy_project.parent / "runs" / "toy" / "failed-smoke-"))
        assert (toy_project.parent / "runs" / "toy" / kept.rsplit("/", 1)[-1] / "toy.ipynb").exists()
        assert killed["status"] == "failed" and "worker process died" in killed["error"]
    failures = [line for line in captured.err.splitlines() if line.startswith("FAILED")]
    assert len(failures) == 4 and any("scale=3, seed=2: ValueError: scale 3 is too large" in f for f in failures)
    assert "4 ran, 0 cache hits, 4 failed" in captured.out and str(folder / "sweep.csv") in captured.out
    assert "FAILED" not in captured.out  # the failures and the bar go to stderr, the summary to stdout
    page = (folder / "sweep.md").read_text()
    assert "![toy: value over the sweep](sweep.png)" in page and "| 2 | 2 | ran | reproduced | 22 |" in page
    assert (folder / "sweep.png").stat().st_size > 10_000
    assert not (toy_project.parent / "runs" / "toy" / "latest-smoke.json").exists()  # the book's run is untouched

    before = sorted(p.name for p in (toy_project.parent / "runs" / "toy").iterdir() if p.name.startswith("smoke-"))
    assert cli.main(argv) == 1
    again = {(r["scale"], r["seed"]): r for r in read_rows(folder / "sweep.csv")}
    for key, row in again.items():
        if key[0] in "12":
            assert row["status"] == "hit" and row["cache_hit"] == "True"
            assert row["metric:value"] == got[key]["metric:value"] and row["folder"] == got[key]["folder"]
        else:
            assert row["status"] == "failed"  # a failed run is never cached: it runs (and fails) again
    after = sorted(p.name for p in (toy_project.parent / "runs" / "toy").iterdir() if p.name.startswith("smoke-"))
    assert after == before and len(after) == 4
    assert "0 ran, 4 cache hits, 4 failed" in capsys.readouterr().out


def test_a_chapter_that_needs_another_gets_it_run_once_before_its_points(toy_project, capsys):
    write_chapter(toy_project / "notebooks" / "part", "user", 'profile = "book"\nupstream = ""\nk = 1',
                  'x = float(open(upstream).read().split("=")[1])\n' + save_cell("user", '{"product": x * k}'),
                  "title: User\nneeds:\n  upstream: producer/artefact.txt\n")
    assert cli.main(["sweep", "user", "--profile", "smoke", "--grid", "k=2,3", "--name", "k"]) == 0
    rows = read_rows(toy_project / "_build" / "sweeps" / "user" / "k" / "sweep.csv")
    # the producer's smoke profile sets x = 2.0; its artefact reached every point
    assert [(r["k"], r["status"], float(r["metric:product"])) for r in rows] == [("2", "ran", 4.0), ("3", "ran", 6.0)]
    producer_runs = [p for p in (toy_project.parent / "runs" / "producer").iterdir() if p.name.startswith("smoke-")]
    assert len(producer_runs) == 1
    assert "2 ran, 0 cache hits, 0 failed" in capsys.readouterr().out
