import json
import subprocess
import sys
import time

import pytest

from embrepro.book import runner as runner_module
from embrepro.book.runner import ParameterError, Runner, discover, latest_run


def quiet_runner(root):
    return Runner(discover(root), log=lambda line: None)


def test_real_chapters_declare_a_parameters_cell_and_profiles():
    chapters = discover()
    assert not chapters.broken, chapters.broken
    assert {"word2vec", "sentence_bert"} <= set(chapters)
    for spec in chapters.values():
        assert {"profile", "seed", "device"} <= set(spec.defaults), spec.name
        for profile in ("smoke", "book", "paper"):
            spec.resolve(profile)  # every profile's values have the right names and types


def test_parameter_validation_names_the_problem(tiny_project):
    spec = discover(tiny_project)["producer"]
    with pytest.raises(ParameterError, match="no_such_param"):
        spec.resolve("book", {"no_such_param": "1"})
    with pytest.raises(ParameterError, match="'x' expects float"):
        spec.resolve("book", {"x": "abc"})
    with pytest.raises(ParameterError, match="'fail' expects bool"):
        spec.resolve("book", {"fail": "3"})
    with pytest.raises(ParameterError, match="profile"):
        spec.resolve("fast")
    assert spec.resolve("book", {"x": "1e-3"})["x"] == pytest.approx(0.001)
    assert spec.resolve("book", {"sizes": "[3, 4]"})["sizes"] == [3, 4]
    assert spec.resolve("smoke")["x"] == 2.0 and spec.resolve("smoke")["profile"] == "smoke"
    with pytest.raises(ParameterError, match="sizes"):
        spec.resolve("book", {"sizes": "[1, 'b']"})


def test_cli_exits_2_naming_an_unknown_parameter_before_running_anything():
    done = subprocess.run([sys.executable, "-m", "embrepro.book.cli", "run", "word2vec", "--profile", "smoke",
                           "-p", "no_such_param=1"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "no_such_param" in done.stderr and "Traceback" not in done.stderr
    done = subprocess.run([sys.executable, "-m", "embrepro.book.cli", "run", "word2vec", "-p", "epochs=three"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "epochs" in done.stderr


def test_run_cache_hit_force_and_dependency(tiny_project, monkeypatch):
    r = quiet_runner(tiny_project)
    first = {o.chapter: o for o in r.run(["consumer"], profile="book")}
    assert first["producer"].status == "ran" and first["consumer"].status == "ran"
    result = json.loads((first["consumer"].folder / "result.json").read_text())
    assert result["metrics"]["upstream_x"] == 1.0  # the artefact reached the dependent chapter
    produced = json.loads((first["producer"].folder / "result.json").read_text())
    assert produced["format"] == 2 and produced["claims"][0]["outcome"] == "reproduced"
    assert produced["artefacts"] == {"artefact.txt": runner_module.sha256_file(first["producer"].folder / "artefact.txt")}
    assert produced["peak_memory_mb"] > 0 and produced["runtime_s"] > 0
    assert (first["producer"].folder / "producer.ipynb").exists()

    def no_kernel(*args, **kwargs):
        raise AssertionError("a cache hit must not start a kernel")

    with monkeypatch.context() as patch:
        patch.setattr("papermill.execute_notebook", no_kernel)
        start = time.time()
        second = quiet_runner(tiny_project).run(["consumer"], profile="book")
    assert {o.status for o in second} == {"hit"} and time.time() - start < 10

    before = json.loads((first["producer"].folder / "result.json").read_text())["finished"]
    time.sleep(1.1)
    forced = {o.chapter: o for o in quiet_runner(tiny_project).run(["producer"], profile="book", force=True)}
    assert forced["producer"].status == "ran"
    after = json.loads((forced["producer"].folder / "result.json").read_text())["finished"]
    assert after != before  # the forced run replaced the cached one


def test_changed_parameter_reruns_only_what_changed(tiny_project):
    r = quiet_runner(tiny_project)
    r.run(["consumer"], profile="book")
    again = {o.chapter: o for o in r.run(["consumer", "producer"], profile="book", overrides={})}
    assert again["producer"].status == "hit"
    changed = {o.chapter: o for o in quiet_runner(tiny_project).run(["producer"], profile="book",
                                                                     overrides={"x": "5"})}
    assert changed["producer"].status == "ran"
    # the dependent chapter's key includes its dependency's output: a new producer output re-runs it
    producer_keys = {o.key for o in r.run(["producer"], profile="smoke")}
    consumer = {o.chapter: o for o in r.run(["consumer"], profile="smoke")}
    assert consumer["producer"].key in producer_keys and consumer["consumer"].status == "ran"


def test_failed_run_is_kept_and_never_a_cache_hit(tiny_project):
    r = quiet_runner(tiny_project)
    outcome = r.run(["producer"], profile="book", overrides={"fail": "true"})[0]
    assert outcome.status == "failed" and "asked to fail" in outcome.message
    runs = tiny_project.parent / "runs" / "producer"
    failed = [p for p in runs.iterdir() if p.name.startswith("failed-")]
    assert len(failed) == 1 and (failed[0] / "producer.ipynb").exists()
    assert latest_run("producer", "book") is None
    assert r.run(["producer"], profile="book", overrides={"fail": "true"})[0].status == "failed"


def test_interrupted_run_is_not_cached(tiny_project, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as patch, pytest.raises(KeyboardInterrupt):
        patch.setattr("papermill.execute_notebook", interrupted)
        quiet_runner(tiny_project).run(["producer"], profile="book")
    runs = tiny_project.parent / "runs" / "producer"
    assert [p.name.startswith("failed-") for p in runs.iterdir() if p.is_dir()] == [True]
    assert quiet_runner(tiny_project).run(["producer"], profile="book")[0].status == "ran"


def test_parallel_jobs_run_independent_chapters(tiny_project):
    from conftest import PRODUCER_BODY, write_chapter

    write_chapter(tiny_project / "notebooks" / "part", "producer2", 'profile = "book"\nx = 3.0\nfail = False',
                  PRODUCER_BODY.replace('"producer"', '"producer2"'), "title: Second\n")
    r = quiet_runner(tiny_project)
    waves = r.plan(["producer", "producer2", "consumer"], "book", {})
    assert waves == [["producer", "producer2"], ["consumer"]]
    outcomes = r.run(["producer", "producer2"], profile="book", jobs=2)
    assert sorted(o.status for o in outcomes) == ["ran", "ran"]


def test_unknown_chapter_is_refused(tiny_project):
    with pytest.raises(ParameterError, match="nope"):
        quiet_runner(tiny_project).run(["nope"], profile="book")


def test_cache_key_follows_only_the_modules_a_notebook_imports():
    from embrepro.book.runner import imported_modules, package_fingerprint

    source = ("import numpy\nfrom embrepro import data, plotting\nfrom embrepro.claims import Chapter\n"
              "import embrepro.models\n")
    assert imported_modules(source) == {"embrepro.data", "embrepro", "embrepro.plotting", "embrepro.claims",
                                        "embrepro.models"}
    only_claims = package_fingerprint("from embrepro.claims import Chapter")
    assert only_claims == package_fingerprint("from embrepro.claims import Outcome")
    assert only_claims != package_fingerprint("from embrepro.claims import Chapter\nfrom embrepro import retrieval")
    assert package_fingerprint() != only_claims  # no source: every science module
