import json

import pytest

from embrepro.claims import (INCONCLUSIVE, NOT_ASSESSED, NOT_REPRODUCED, PARTLY, REPRODUCED, Chapter, combine,
                             noise_band, verdict_at_least, verdict_greater, verdict_interval, verdict_ratio,
                             verdict_within)


def test_verdict_greater_separates_clear_wins_ties_and_losses():
    assert verdict_greater([60.0, 61.0, 59.5], [50.0, 51.0, 49.0]) == REPRODUCED
    assert verdict_greater([50.0, 52.0, 48.0], [50.5, 49.0, 51.0]) == INCONCLUSIVE
    assert verdict_greater([40.0, 41.0, 40.5], [50.0, 51.0, 49.0]) == NOT_REPRODUCED


def test_noise_band_is_two_standard_errors_and_respects_the_floor():
    band = noise_band([1.0, 3.0], [2.0, 2.0])  # var(a)=2 -> se^2 = 1 -> 2*sqrt(1)
    assert band == pytest.approx(2.0)
    assert noise_band([1.0], [2.0], floor=0.5) == 0.5
    # a single seed each: only the floor decides
    assert verdict_greater([10.3], [10.0], floor=0.5) == INCONCLUSIVE
    assert verdict_greater([10.6], [10.0], floor=0.5) == REPRODUCED


def test_verdict_at_least_accepts_ties_but_not_losses():
    assert verdict_at_least([50.0, 50.2], [50.1, 50.0]) == REPRODUCED
    assert verdict_at_least([45.0, 45.2], [50.1, 50.0]) == NOT_REPRODUCED


def test_verdict_within_ratio_interval_and_combine():
    assert verdict_within(82.1, 82.03, 0.5) == REPRODUCED
    assert verdict_within(82.9, 82.03, 0.5) == PARTLY
    assert verdict_within(80.0, 82.03, 0.5) == NOT_REPRODUCED
    assert verdict_ratio(2.7, 2.0) == REPRODUCED and verdict_ratio(1.4, 2.0) == NOT_REPRODUCED
    assert verdict_interval(12.0, 20.0, 10.0) == REPRODUCED
    assert verdict_interval(8.0, 20.0, 10.0) == INCONCLUSIVE
    assert verdict_interval(2.0, 8.0, 10.0) == NOT_REPRODUCED
    assert combine([REPRODUCED, REPRODUCED]) == REPRODUCED
    assert combine([REPRODUCED, NOT_REPRODUCED]) == PARTLY
    assert combine([NOT_REPRODUCED, INCONCLUSIVE]) == NOT_REPRODUCED
    assert combine([INCONCLUSIVE, INCONCLUSIVE]) == INCONCLUSIVE
    with pytest.raises(ValueError):
        combine([])


def test_chapter_refuses_bad_labels_typed_verdicts_and_undecided_claims(tmp_path):
    chapter = Chapter("demo", "book")
    with pytest.raises(ValueError, match="evidence"):
        chapter.claim("c", "a claim", paper_value="1", evidence="X", source="s")
    chapter.claim("c", "a claim", paper_value="1", evidence="V", source="s")
    with pytest.raises(ValueError, match="verdict function"):
        chapter.decide("c", "looks fine to me", measured="1", why="")
    with pytest.raises(RuntimeError, match="never decided"):
        chapter.save(tmp_path)
    with pytest.raises(ValueError, match="profile"):
        Chapter("demo", "fast")


def test_smoke_profile_hides_the_verdict_but_keeps_the_computed_one(tmp_path):
    chapter = Chapter("demo", "smoke")
    chapter.claim("c", "a claim", paper_value="1", evidence="S", source="s")
    chapter.decide("c", verdict_greater([5.0, 5.1], [1.0, 1.1]), measured="5 vs 1", why="test")
    chapter.metric("m", 3)
    saved = json.loads(chapter.save(tmp_path).read_text())
    assert saved["claims"][0]["verdict"] == NOT_ASSESSED
    assert saved["claims"][0]["computed_verdict"] == REPRODUCED
    assert saved["metrics"] == {"m": 3.0}
    assert saved["peak_memory_mb"] > 10 and saved["runtime_s"] >= 0
