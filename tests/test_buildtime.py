"""The run report's whole-book build section: what it reads, what it says, when it refuses."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from embrepro.book import buildtime

ROOT = Path(__file__).resolve().parents[1]


def _data(cold_chapters=(("a", 100.0), ("b", 300.0)), cold_total=500.0, warm_total=20.0) -> dict:
    return {"date": "2026-12-06", "jobs": 1,
            "machine": {"cpu": "Test CPU", "cores": 2, "threads": 2, "precision": "bf16"},
            "cold": {"run_s": cold_total - 60, "book_s": 60.0, "total_s": cold_total, "chapters": dict(cold_chapters)},
            "warm": {"run_s": warm_total - 15, "book_s": 15.0, "total_s": warm_total}}


def test_goals_met_and_not_met_are_both_possible():
    met = buildtime.markdown(_data(cold_total=300.0, warm_total=20.0))  # 150 s per chapter, 20 s warm
    assert "(2.50 min per chapter) | under 3 min per chapter: met" in met and "under 30 s: met" in met
    missed = buildtime.markdown(_data(cold_total=400.0, warm_total=45.0))  # 200 s per chapter, 45 s warm
    assert "under 3 min per chapter: not met" in missed and "under 30 s: not met" in missed
    assert "bf16" in missed and "`--jobs 1`" in missed
    # just over the goal: two decimals, so that a miss never reads "3.0 min ... not met"
    close = buildtime.markdown(_data(cold_total=363.0))  # 181.5 s per chapter
    assert "(3.02 min per chapter) | under 3 min per chapter: not met" in close


def test_no_timing_yet_says_so():
    assert "No whole-book build has been timed yet" in buildtime.markdown(None)


@pytest.mark.parametrize("broken, message", [
    (lambda d: d["warm"].pop("total_s"), "'warm' must give"),
    (lambda d: d["cold"].update(chapters={}), "cold.chapters"),
    (lambda d: d["cold"]["chapters"].update(a=-1), "cold.chapters"),
    (lambda d: d.pop("machine"), "lacks 'machine'"),
])
def test_a_broken_record_is_refused(broken, message):
    data = _data()
    broken(data)
    with pytest.raises(buildtime.BuildTimeError, match=message):
        buildtime.validate(data)


def test_section_writes_the_figure_next_to_the_page(tmp_path):
    (tmp_path / "results" / "build").mkdir(parents=True)
    (tmp_path / "results" / "build" / "book-timing.json").write_text(json.dumps(_data()))
    out = tmp_path / "generated"
    text = buildtime.section(tmp_path, figure_dir=out)
    assert "![Each chapter's cold run time](build-times.png)" in text
    png = (out / "build-times.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    assert "No whole-book build" in buildtime.section(tmp_path / "elsewhere", figure_dir=out)


def test_the_timing_script_refuses_a_used_workdir_before_running_anything(tmp_path, capsys, monkeypatch):
    spec = importlib.util.spec_from_file_location("book_build", ROOT / "benchmarks" / "book_build.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    monkeypatch.setattr(script.subprocess, "run", lambda *a, **k: pytest.fail("nothing may run"))
    used = tmp_path / "used"
    used.mkdir()
    with pytest.raises(SystemExit) as stop:
        script.main(["--workdir", str(used)])
    assert stop.value.code == 2 and "would not be cold" in capsys.readouterr().err
    with pytest.raises(SystemExit) as stop:
        script.main(["--jobs", "0"])
    assert stop.value.code == 2
