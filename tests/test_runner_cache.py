"""Probe defects 2, 4, 7 and 8: the cache follows upstream output, validates what it serves,
survives read-only folders, killed runs and racing runs, and explains itself (--dry-run)."""

import json
import os
import subprocess
import sys

import pytest

from conftest import save_cell, write_chapter
from embrepro.book import cli
from embrepro.book import runner as runner_module
from embrepro.book.runner import NotWritable, Runner, discover


def runner_with_log(root):
    lines = []
    return Runner(discover(root), log=lines.append), lines


def no_kernel(*args, **kwargs):
    raise AssertionError("no kernel may start here")


def add_clock_chapters(root):
    """``clock`` writes a different artefact on every run; ``reader`` needs it."""
    write_chapter(root / "notebooks" / "part", "clock", 'profile = "book"',
                  'import time\nopen("tick.txt", "w").write(str(time.time_ns()))\n' + save_cell("clock", "{}"),
                  "title: Clock\nartefacts: [tick.txt]\n")
    write_chapter(root / "notebooks" / "part", "reader", 'profile = "book"\ntick = ""',
                  'value = open(tick).read()\n' + save_cell("reader", '{"tick": float(value)}'),
                  "title: Reader\nneeds:\n  tick: clock/tick.txt\n")


# -- defect 2: downstream keys follow the upstream run's output ---------------------------------

def test_forced_upstream_with_new_output_reruns_its_dependants(tiny_project):
    add_clock_chapters(tiny_project)
    r, _ = runner_with_log(tiny_project)
    first = {o.chapter: o for o in r.run(["reader"])}
    assert first["reader"].status == "ran"
    assert {o.status for o in r.run(["reader"])} == {"hit"}
    r.run(["clock"], force=True)  # new output: the reader's old result was built from a file that is gone
    again = {o.chapter: o for o in r.run(["reader"])}
    assert again["clock"].status == "hit" and again["reader"].status == "ran"
    record = json.loads((again["reader"].folder / "result.json").read_text())
    tick_sha = runner_module.sha256_file(again["clock"].folder / "tick.txt")
    assert record["key_components"]["upstream"]["tick"] == {"from": "clock/tick.txt", "sha256": {"tick.txt": tick_sha}}
    assert record["metrics"]["tick"] == float((again["clock"].folder / "tick.txt").read_text())


def test_forced_upstream_with_the_same_output_keeps_dependants_cached(tiny_project):
    r, _ = runner_with_log(tiny_project)
    r.run(["consumer"])
    r.run(["producer"], force=True)  # deterministic: byte-identical artefact
    assert {o.chapter: o.status for o in r.run(["consumer"])} == {"producer": "hit", "consumer": "hit"}


# -- defect 4: a damaged run folder is never served ---------------------------------------------

def test_damaged_run_folder_is_rerun_with_one_log_line(tiny_project):
    r, lines = runner_with_log(tiny_project)
    folder = r.run(["producer"])[0].folder
    result = folder / "result.json"

    def old_format():
        data = json.loads(result.read_text())
        data.pop("format")
        result.write_text(json.dumps(data))

    damages = {
        "truncated result.json": lambda: result.write_text(result.read_text()[:40]),
        "missing artefact": lambda: (folder / "artefact.txt").unlink(),
        "changed artefact": lambda: (folder / "artefact.txt").write_text("x=9.0"),
        "format-1 result.json": old_format,
    }
    for damage, apply in damages.items():
        apply()
        lines.clear()
        again = r.run(["producer"])[0]
        assert again.status == "ran" and again.folder == folder, damage
        notes = [line for line in lines if "not used" in line]
        assert len(notes) == 1 and folder.name in notes[0], (damage, lines)
        assert r.run(["producer"])[0].status == "hit", damage  # the re-run repaired the folder


# -- defect 7: read-only folders, killed runs, racing runs --------------------------------------

def _pretend_read_only(monkeypatch, folder):
    """chmod does not stop root (these tests may run as root): make os.access say read-only and
    writes under ``folder`` fail as they would."""
    real_access, real_replace = os.access, os.replace
    inside = lambda p: str(p).startswith(str(folder))  # noqa: E731

    def access(path, mode, *args, **kwargs):
        return False if inside(path) and mode & os.W_OK else real_access(path, mode, *args, **kwargs)

    def replace(src, dst, *args, **kwargs):
        if inside(dst):
            raise PermissionError(13, "Permission denied", str(dst))
        return real_replace(src, dst, *args, **kwargs)

    real_write = type(folder).write_text

    def write_text(self, *args, **kwargs):
        if inside(self):
            raise PermissionError(13, "Permission denied", str(self))
        return real_write(self, *args, **kwargs)

    monkeypatch.setattr(os, "access", access)
    monkeypatch.setattr(os, "replace", replace)
    monkeypatch.setattr(type(folder), "write_text", write_text)


def test_cache_hit_in_a_read_only_runs_folder_needs_no_write(tiny_project, monkeypatch):
    r, lines = runner_with_log(tiny_project)
    r.run(["producer"])
    runs = tiny_project.parent / "runs"
    _pretend_read_only(monkeypatch, runs)
    monkeypatch.setattr("papermill.execute_notebook", no_kernel)
    lines.clear()
    assert r.run(["producer"])[0].status == "hit"
    assert any("warning: could not update latest-book.json" in line for line in lines)


def test_a_run_into_a_read_only_folder_stops_before_any_kernel(tiny_project, monkeypatch, capsys):
    runs = tiny_project.parent / "runs"
    runs.mkdir()
    _pretend_read_only(monkeypatch, runs)
    monkeypatch.setattr("papermill.execute_notebook", no_kernel)
    with pytest.raises(NotWritable, match="read-only"):
        runner_with_log(tiny_project)[0].run(["producer"])
    monkeypatch.setenv("EMBREPRO_ROOT", str(tiny_project))
    assert cli.main(["run", "producer"]) == 2
    err = capsys.readouterr().err
    assert "read-only" in err and str(runs / "producer") in err and "Traceback" not in err


def test_record_into_a_read_only_results_folder_exits_2(tiny_project, monkeypatch, capsys):
    monkeypatch.setenv("EMBREPRO_ROOT", str(tiny_project))
    runner_with_log(tiny_project)[0].run(["producer"], profile="smoke")
    (tiny_project / "results").mkdir()
    _pretend_read_only(monkeypatch, tiny_project / "results")
    assert cli.main(["record", "producer", "--profile", "smoke"]) == 2
    assert "results" in capsys.readouterr().err
    assert not (tiny_project / "results" / "producer").exists()


def test_record_writes_a_validated_format_2_record(tiny_project, monkeypatch):
    monkeypatch.setenv("EMBREPRO_ROOT", str(tiny_project))
    runner_with_log(tiny_project)[0].run(["producer"], profile="smoke")
    assert cli.main(["record", "producer", "--profile", "smoke"]) == 0
    recorded = json.loads((tiny_project / "results" / "producer" / "smoke.json").read_text())
    assert recorded["format"] == 2 and recorded["metrics"] == {"x": 2.0}


def test_work_folders_of_dead_runs_are_removed_at_start(tiny_project):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    folder = tiny_project.parent / "runs" / "producer"
    stale = folder / f".tmp-book-0123456789abcdef-{dead.pid}-1"
    alive = folder / f".tmp-book-0123456789abcdef-{os.getpid()}-2"
    for path in (stale, alive):
        path.mkdir(parents=True)
        (path / "producer.ipynb").write_text("{}")
    r, lines = runner_with_log(tiny_project)
    assert r.run(["producer"])[0].status == "ran"
    assert not stale.exists() and alive.exists()
    assert any(str(stale) in line and "removed" in line for line in lines)


def test_two_identical_runs_finishing_at_once_keep_the_first(tiny_project, monkeypatch):
    """Simulated with os.replace: just before our rename, the other run's folder appears."""
    real_replace = os.replace
    first_files = []

    def racing_replace(src, dst, *args, **kwargs):
        if os.path.basename(str(src)).startswith(".tmp-") and not os.path.exists(dst):
            os.makedirs(dst)
            open(os.path.join(dst, "result.json"), "w").write("{}")  # the other run, finished first
            first_files.append(dst)
        return real_replace(src, dst, *args, **kwargs)  # raises ENOTEMPTY, as a real race does

    monkeypatch.setattr(os, "replace", racing_replace)
    r, lines = runner_with_log(tiny_project)
    outcome = r.run(["producer"])[0]
    assert outcome.status == "ran" and first_files
    assert (outcome.folder / "result.json").read_text() == "{}"  # the first one's folder is kept
    assert not [p for p in outcome.folder.parent.iterdir() if p.name.startswith(".tmp-")]
    assert any("identical run finished first" in line for line in lines)


# -- defect 8: --dry-run says hit or run, and why -----------------------------------------------

def _why(decisions, chapter):
    d = {d.chapter: d for d in decisions}[chapter]
    return d.action, " | ".join(d.reasons)


def test_dry_run_names_what_changed(tiny_project, monkeypatch, tmp_path):
    import shutil

    write_chapter(tiny_project / "notebooks" / "part", "user", 'profile = "book"',
                  "import embrepro.paths\n" + save_cell("user", "{}"), "title: User\n")
    r, _ = runner_with_log(tiny_project)
    with monkeypatch.context() as m:  # (monkeypatch.undo() would also undo the fixture's EMBREPRO_RUNS)
        m.setattr("papermill.execute_notebook", no_kernel)
        assert _why(r.explain(["producer"], "smoke"), "producer") == ("run", "no earlier run")
    r.run(["consumer", "user"])
    assert runner_module.runs_dir().is_relative_to(tmp_path), "a test must never write to the real _runs/"
    assert _why(r.explain(["producer"]), "producer")[0] == "hit"
    action, why = _why(r.explain(["producer"], overrides={"x": "5"}), "producer")
    assert action == "run" and "parameters x: 1.0 -> 5.0" in why
    assert "forced" in _why(r.explain(["producer"], force=True), "producer")[1]

    copy = tmp_path / "pkg" / "embrepro"
    shutil.copytree(runner_module.PACKAGE_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(runner_module, "PACKAGE_DIR", copy)
    (copy / "paths.py").write_text((copy / "paths.py").read_text() + "\n# edited\n")
    action, why = _why(r.explain(["user", "producer"]), "user")
    assert action == "run" and "package modules embrepro.paths" in why
    assert _why(r.explain(["producer"]), "producer")[0] == "hit"  # producer imports nothing of ours
    monkeypatch.setattr(runner_module, "PACKAGE_DIR", runner_module.Path(runner_module.__file__).resolve().parent.parent)

    monkeypatch.setenv("EMBREPRO_THREADS", "7")
    assert "threads 2 -> 7" in _why(r.explain(["producer"]), "producer")[1] or \
        "threads 1 -> 7" in _why(r.explain(["producer"]), "producer")[1]
    monkeypatch.delenv("EMBREPRO_THREADS")
    other = "fp32" if runner_module.default_precision() == "bf16" else "bf16"
    with monkeypatch.context() as m:  # encodings at another precision are other results: a new key
        m.setattr(runner_module, "default_precision", lambda: other)
        assert f"encoding precision {'bf16' if other == 'fp32' else 'fp32'} -> {other}" in \
            _why(r.explain(["producer"]), "producer")[1]
    assert _why(r.explain(["producer"]), "producer")[0] == "hit"
    versions = runner_module.library_versions()
    monkeypatch.setattr(runner_module, "library_versions", lambda: {**versions, "numpy": "0.0"})
    assert "library versions numpy" in _why(r.explain(["producer"]), "producer")[1]
    monkeypatch.setattr(runner_module, "library_versions", lambda: versions)

    nb = tiny_project / "notebooks" / "part" / "producer.ipynb"
    nb.write_text(nb.read_text().replace("asked to fail", "asked to fail!"))
    assert "notebook changed" in _why(r.explain(["producer"]), "producer")[1]

    action, why = _why(r.explain(["consumer"]), "consumer")
    assert action == "run" and "upstream producer must run first" in why


def test_dry_run_from_the_command_line(tiny_project, monkeypatch, capsys):
    monkeypatch.setenv("EMBREPRO_ROOT", str(tiny_project))
    runner_with_log(tiny_project)[0].run(["producer"])
    monkeypatch.setattr("papermill.execute_notebook", no_kernel)
    assert cli.main(["run", "--dry-run", "consumer"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:2] == ["hit", "producer"]
    assert out[1].split()[:2] == ["run", "consumer"] and "no earlier run" in out[1]
