"""Each verdict rule on constructed cases at, inside and outside its bar (verdicts.md)."""

import json
import math

import pytest

from embrepro.claims import (CheckOutcome, Chapter, Compound, Direction, Equivalence, NoLoss, NotAssessable,
                             Outcome, Pattern, Ratio, Shape, Value, combine)
from embrepro.stats import Interval, seed_difference

R, NR, INC, NA, PART = (Outcome.REPRODUCED, Outcome.NOT_REPRODUCED, Outcome.INCONCLUSIVE,
                        Outcome.NOT_ASSESSABLE, Outcome.PARTLY)


def iv(estimate, low, high):
    return Interval(estimate, low, high, method="constructed")


def test_direction_a_tie_is_never_a_win():
    rule = Direction()
    assert rule.judge(iv(0.0, 0.0, 0.0)) == INC          # exact tie, zero width
    assert rule.judge(iv(0.0, -1.0, 1.0)) == INC         # tie within noise
    assert rule.judge(iv(3.0, 1.0, 5.0)) == R            # clear win
    assert rule.judge(iv(-3.0, -5.0, -1.0)) == NR        # reversal
    assert rule.judge(iv(0.5, -0.2, 1.2)) == INC         # straddle
    # the old verdict_at_least turned this (a tie) into "reproduced": no longer
    tie = seed_difference([50.0, 50.2, 49.9], [50.1, 50.0, 50.0])
    assert rule.judge(tie) == INC


def test_direction_minimal_effect_delta():
    rule = Direction(delta=2.0, unit=" points")
    assert rule.judge(iv(3.0, 2.5, 3.5)) == R
    assert rule.judge(iv(1.5, 1.0, 2.0 + 1e-9)) == INC   # significant but below delta, upper bound reaches it
    assert rule.judge(iv(1.0, 0.5, 1.5)) == NR           # significant but smaller than the minimal effect
    assert rule.judge(iv(2.0, 0.1, 3.9)) == R            # exactly at the bar: estimate >= delta
    assert rule.judge(iv(1.99, 0.1, 3.9)) == INC         # just under the bar
    with pytest.raises(ValueError):
        Direction(delta=-1)
    assert "2 points" in rule.sentence()


def test_seed_intervals_use_t_with_n_minus_1_degrees_of_freedom():
    # three seeds, differences 1, 2, 3: mean 2, sd 1, se 1/sqrt(3); t(0.975, 2) = 4.303
    d = seed_difference([1.0, 2.0, 3.0], [0.0, 0.0, 0.0])
    assert d.half_width == pytest.approx(4.3027 / math.sqrt(3), rel=1e-4)
    assert Direction().judge(d) == INC  # 2 s.e. would have called this a win (lower bound 0.85)
    # one seed: no noise estimate, never decisive
    one = seed_difference([5.0], [1.0])
    assert math.isinf(one.low) and Direction().judge(one) == INC


def test_equivalence_inside_outside_and_straddle():
    rule = Equivalence(margin=1.0)
    assert rule.judge(iv(0.1, -0.5, 0.7)) == R
    assert rule.judge(iv(2.0, 1.5, 2.5)) == NR
    assert rule.judge(iv(-2.0, -2.5, -1.5)) == NR
    assert rule.judge(iv(0.8, 0.2, 1.4)) == INC
    assert rule.judge(iv(0.0, -1.0, 1.0)) == INC         # touching the margin is not inside it


def test_no_loss_is_one_sided():
    rule = NoLoss(margin=1.0)
    assert rule.judge(iv(5.0, 3.0, 7.0)) == R            # a gain is no loss
    assert rule.judge(iv(-0.2, -0.8, 0.4)) == R
    assert rule.judge(iv(-1.0, -1.6, -0.4)) == INC
    assert rule.judge(iv(-3.0, -3.5, -2.5)) == NR


def test_value_is_parity_around_the_papers_number():
    rule = Value(target=97.0, tolerance=1.0)
    assert rule.judge(iv(97.6, 96.5, 97.9)) == R
    assert rule.judge(iv(91.1, 90.0, 92.0)) == NR
    assert rule.judge(iv(97.6, 95.0, 99.5)) == INC       # interval too wide to say
    assert "97 ± 1" in rule.sentence()


def test_shape_and_ratio_thresholds():
    convex = Shape(statistic="the quadratic coefficient")
    assert convex.judge(iv(0.3, 0.1, 0.5)) == R
    assert convex.judge(iv(0.0, -0.1, 0.1)) == INC
    assert convex.judge(iv(-0.3, -0.5, -0.1)) == NR
    decreasing = Shape(statistic="the slope", above=False)
    assert decreasing.judge(iv(-1, -2, -0.5)) == R and decreasing.judge(iv(1, 0.5, 2)) == NR
    speed = Ratio(what="the speed-up", bar=2.0)
    assert speed.judge(iv(3.0, 2.5, 3.5)) == R
    assert speed.judge(iv(2.1, 1.8, 2.4)) == INC
    assert speed.judge(iv(1.2, 1.1, 1.3)) == NR


def test_pattern_uses_one_sign_test_not_raw_wins():
    rule = Pattern(cells="27 cells")
    assert rule.judge([1.0] * 20 + [-1.0] * 2) == R
    assert rule.judge([1.0] * 11 + [-1.0] * 3 + [0.0] * 13) == R     # 11 vs 3: p = 0.029
    assert rule.judge([1.0] * 6 + [-1.0] * 3 + [0.0] * 18) == INC    # 6 vs 3 is chance
    assert rule.judge([-1.0] * 15 + [1.0] * 2) == NR
    assert rule.judge([0.0] * 27) == INC                             # ties only: nothing to say
    with pytest.raises(TypeError):
        rule.judge(iv(1, 0, 2))


def test_compound_and_combine():
    assert combine([R, R]) == R
    assert combine([R, NR]) == PART
    assert combine([R, INC]) == INC
    assert combine([NR, INC]) == NR
    assert combine([INC, INC]) == INC
    assert combine([NA, NA]) == NA
    assert combine([NA, R]) == INC
    rule = Compound({"speed": Ratio(bar=2.0), "accuracy": NoLoss(margin=1.0)})
    assert rule.judge({"speed": iv(3, 2.5, 3.5), "accuracy": iv(-5, -6, -4)}) == PART
    assert rule.judge({"speed": iv(3, 2.5, 3.5), "accuracy": NotAssessable("too small")}) == INC
    with pytest.raises(ValueError, match="exactly its parts"):
        rule.judge({"speed": iv(3, 2.5, 3.5)})


def test_chapter_precondition_failure_makes_a_claim_not_assessable():
    ch = Chapter("t", "book")
    ch.claim("c", "A beats B", rule=Direction(), paper_value="1", evidence="V", source="s",
             requires={"trained": "A reaches 20% accuracy"})
    with pytest.raises(ValueError, match="preconditions"):
        ch.decide("c", iv(3, 2, 4), measured="3")
    c = ch.decide("c", iv(3, 2, 4), measured="3", preconditions={"trained": (False, "A reached 7%")})
    assert c.outcome == NA and "A reached 7%" in c.why
    ch.claim("d", "A beats B", rule=Direction(), paper_value="1", evidence="V", source="s",
             requires={"trained": "A reaches 20% accuracy"})
    assert ch.decide("d", iv(3, 2, 4), measured="3", preconditions={"trained": (True, "25%")}).outcome == R


def test_chapter_record_checks_apart_and_smoke_label(tmp_path):
    ch = Chapter("t", "smoke")
    ch.claim("c", "A beats B", rule=Direction(), paper_value="1", evidence="S", source="s")
    ch.check("anchor", "MiniLM on STS-B", kind="anchor", source="MTEB", expected=82.03, measured=82.0,
             tolerance=0.3)
    with pytest.raises(RuntimeError, match="never decided"):
        ch.save(tmp_path)
    ch.decide("c", iv(3, 2, 4), measured="3")
    ch.report("speedup", 2.5, timing=True)
    ch.report("acc", 41.0)
    saved = json.loads(ch.save(tmp_path).read_text())
    assert saved["format"] == 2
    assert saved["claims"][0]["outcome"] == "not assessed (smoke)"
    assert saved["claims"][0]["computed_outcome"] == "reproduced"
    assert saved["claims"][0]["interval"] == [2, 4] and saved["claims"][0]["kind"] == "direction"
    assert "above 0" in saved["claims"][0]["rule"]
    assert saved["checks"][0]["computed_outcome"] == "passed" and len(saved["claims"]) == 1
    assert saved["metrics"] == {"acc": 41.0} and saved["timings"] == {"speedup": 2.5}


def test_checks_pass_and_fail_and_need_a_rule():
    ch = Chapter("t", "book")
    assert ch.check("a", "x", kind="anchor", source="s", expected=64.51, measured=60.0,
                    tolerance=1.0).outcome == CheckOutcome.FAILED
    assert ch.check("b", "32x smaller", kind="arithmetic", source="s", passed=True,
                    rule="size ratio equals 32").outcome == CheckOutcome.PASSED
    with pytest.raises(ValueError, match="rule"):
        ch.check("c", "x", kind="arithmetic", source="s", passed=True)
    with pytest.raises(ValueError, match="kind"):
        ch.check("d", "x", kind="claim", source="s", passed=True, rule="r")


def test_claims_refuse_bad_declarations():
    ch = Chapter("t", "book")
    with pytest.raises(ValueError, match="evidence"):
        ch.claim("a", "x", rule=Direction(), paper_value="1", evidence="X", source="s")
    with pytest.raises(TypeError, match="rule"):
        ch.claim("a", "x", rule="greater", paper_value="1", evidence="V", source="s")
    ch.claim("a", "x", rule=Direction(), paper_value="1", evidence="V", source="s")
    with pytest.raises(TypeError):
        ch.decide("a", 3.0, measured="3")              # a bare number is not evidence
    ch.decide("a", iv(1, 0.5, 2), measured="1")
    with pytest.raises(ValueError, match="twice"):
        ch.decide("a", iv(1, 0.5, 2), measured="1")
    with pytest.raises(ValueError, match="profile"):
        Chapter("t", "fast")


def test_report_glues_plain_numbers_not_numpy_scalars(monkeypatch):
    import numpy as np

    from embrepro import claims

    glued = {}
    monkeypatch.setattr(claims, "glue", lambda name, value: glued.setdefault(name, value))
    ch = Chapter("t", "book")
    ch.report("gap", np.float64(1.8))
    ch.report("count", np.int64(7))
    assert type(glued["gap"]) is float and type(glued["count"]) is int
    assert ch.metrics == {"gap": 1.8, "count": 7}


def test_verdicts_table_shows_each_part_of_a_compound_claim():
    ch = Chapter("t", "book")
    ch.claim("c", "fast and no loss", rule=Compound({"speed": Ratio(bar=2.0), "accuracy": NoLoss(margin=1.0)}),
             paper_value="2.7x, +1", evidence="V", source="s")
    ch.decide("c", {"speed": iv(3, 2.5, 3.5), "accuracy": iv(-5, -6, -4)}, measured="3x; -5")
    row = ch.verdicts().loc["c"]
    assert row["verdict"] == "partly reproduced (speed: reproduced; accuracy: not reproduced)"


def test_book_extension_is_labelled_as_such():
    from embrepro.claims import evidence_label
    ch = Chapter("t", "book")
    ch.claim("ext", "A beats B", rule=Direction(), paper_value="none", evidence="E",
             source="control added by the book")
    assert ch.claims_table().loc["ext", "evidence"] == "book's extension (control added by the book)"
    assert evidence_label("V", "Table 1") == "[V] Table 1"
    assert evidence_label("E", "") == "book's extension"
