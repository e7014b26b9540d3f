"""Defect 9: one typed run record, validated on read, with older recordings converted."""

import json

import pytest

from embrepro.book.runner import PROFILES
from embrepro.book.record import FORMAT, RecordError, RunRecord, read_chapter_result, record_differences
from embrepro.paths import project_root


def _record(**changes) -> dict:
    data = {
        "format": 2, "chapter": "demo", "title": "Demo", "profile": "book", "status": "ok", "device": "cpu",
        "claims": [{"id": "c1", "statement": "A beats B", "kind": "direction", "measured": "0.5",
                    "estimate": 0.5, "interval": [0.1, 0.9], "outcome": "reproduced",
                    "computed_outcome": "reproduced"},
                   {"id": "fast", "statement": "A is faster", "kind": "ratio", "measured": "3.1x",
                    "estimate": 3.1, "interval": [2.9, 3.3], "outcome": "reproduced",
                    "computed_outcome": "reproduced"}],
        "checks": [{"id": "k1", "statement": "32x smaller", "kind": "arithmetic", "measured": "32",
                    "outcome": "pass"}],
        "metrics": {"acc": 0.5}, "timings": {"train_s": 1.0},
        "runtime_s": 3.0, "notebook_runtime_s": 2.5, "peak_memory_mb": 100.0,
        "cache_key": "k" * 64, "key_components": {}, "parameters": {"seed": 0},
        "artefacts": {"v.kv": "0" * 64}, "threads": 2, "cpu_count": 2, "versions": {"python": "3.11"},
        "started": "2026-01-01T00:00:00Z", "finished": "2026-01-01T00:00:03Z",
    }
    data.update(changes)
    return data


def test_round_trip_and_validation_name_the_file(tmp_path):
    record = RunRecord.from_json(_record())
    assert RunRecord.from_json(json.loads(json.dumps(record.to_json()))) == record
    path = record.save(tmp_path / "result.json")
    assert RunRecord.load(path) == record and record.format == FORMAT
    for broken, message in ((_record(metrics={"acc": "high"}), "metrics that are not numbers: acc"),
                            (_record(claims=[{"statement": "no id"}]), "lacks id, outcome"),
                            (_record(format=3), "format 3"),
                            (_record(status="failed"), "status"),
                            (_record(artefacts={"v.kv": "short"}), "sha256"),
                            ({k: v for k, v in _record().items() if k != "cache_key"}, "lacks cache_key")):
        path.write_text(json.dumps(broken))
        with pytest.raises(RecordError, match=message) as info:
            RunRecord.load(path)
        assert str(path) in str(info.value)
    path.write_text(json.dumps(_record())[:50])
    with pytest.raises(RecordError, match="cannot be read as JSON"):
        RunRecord.load(path)


def test_format_1_recordings_are_converted_on_read_but_never_served_from_the_cache(tmp_path):
    # chapter records are results/<chapter>/<profile>.json (results/build and results/precision hold other files)
    recorded = sorted(p for p in (project_root() / "results").glob("*/*.json") if p.stem in PROFILES)
    assert len(recorded) >= 23, "results/ holds recorded runs"
    for path in recorded:
        record = RunRecord.load(path)  # format 1 or 2: every reader gets a RunRecord
        assert record.format == FORMAT and all("outcome" in c for c in record.claims)
    old = {k: v for k, v in _record().items() if k not in ("format", "checks", "timings", "key_components",
                                                            "artefacts")}
    old["claims"] = [{"id": "c1", "statement": "s", "verdict": "not reproduced", "computed_verdict": "not reproduced"}]
    converted = RunRecord.from_json(old)
    assert converted.claims[0]["outcome"] == "not reproduced" and converted.claims[0]["computed_outcome"] == "not reproduced"
    assert converted.checks == [] and converted.timings == {} and converted.artefacts == {}
    with pytest.raises(RecordError, match="format 1"):
        RunRecord.from_json(old, upgrade=False)


def test_chapter_result_is_read_in_format_2_and_legacy_shape(tmp_path):
    side = {k: _record()[k] for k in ("chapter", "profile", "device", "claims", "checks", "metrics",
                                      "timings", "runtime_s", "peak_memory_mb")}
    path = tmp_path / "chapter-result.json"
    path.write_text(json.dumps({"format": 2, **side}))
    assert read_chapter_result(path) == side
    legacy = {**side, "claims": [{"id": "c", "verdict": "reproduced"}]}
    legacy.pop("checks"), legacy.pop("timings")
    path.write_text(json.dumps(legacy))
    assert read_chapter_result(path)["claims"] == [{"id": "c", "outcome": "reproduced"}]
    path.write_text(json.dumps({"format": 2, **side, "profile": "fast"}))
    with pytest.raises(RecordError, match="unknown profile"):
        read_chapter_result(path)


def test_differences_compare_metrics_and_outcomes_but_not_timings():
    a = RunRecord.from_json(_record())
    assert record_differences(a, a) == []
    same = RunRecord.from_json(_record(timings={"train_s": 99.0}, metrics={"acc": 0.5 * (1 + 1e-12)}))
    assert record_differences(a, same) == []
    claims = _record()["claims"]
    claims[1] = {**claims[1], "measured": "2.7x", "estimate": 2.7}  # timings behind an outcome
    claims[0] = {**claims[0], "measured": "0.5 (trained in 3.2 s)", "parts": [{"id": "p", "outcome": "reproduced"}]}
    assert record_differences(a, RunRecord.from_json(_record(claims=claims))) == [
        "claim c1: 0 parts != 1 parts"]
    claims[0] = {**claims[0], "outcome": "inconclusive"}
    checks = [{**_record()["checks"][0], "outcome": "fail"}]
    changed = RunRecord.from_json(_record(claims=claims, checks=checks, metrics={"acc": 0.51, "new": 1.0}))
    lines = record_differences(a, changed)
    assert "metric acc: 0.5 != 0.51" in lines and "metric new: only in the second run" in lines
    assert "claim c1 outcome: 'reproduced' != 'inconclusive'" in lines
    assert "check k1 outcome: 'pass' != 'fail'" in lines and len(lines) == 5


def test_a_timing_claim_is_compared_on_its_displayed_outcome_only():
    a = RunRecord.from_json(_record())
    claims = _record()["claims"]
    claims[1] = {**claims[1], "computed_outcome": "inconclusive"}   # a busier machine at the smoke profile
    assert record_differences(a, RunRecord.from_json(_record(claims=claims))) == []
    claims[1] = {**claims[1], "outcome": "inconclusive"}            # the shown verdict must still agree
    assert record_differences(a, RunRecord.from_json(_record(claims=claims))) == [
        "claim fast outcome: 'reproduced' != 'inconclusive'"]
    claims = _record()["claims"]
    claims[0] = {**claims[0], "computed_outcome": "inconclusive"}   # any other kind: computed outcomes too
    assert record_differences(a, RunRecord.from_json(_record(claims=claims))) == [
        "claim c1 computed_outcome: 'reproduced' != 'inconclusive'"]
