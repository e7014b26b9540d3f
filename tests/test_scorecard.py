"""The scorecard: JSON of every claim and check, and the page with rules, a chart and checks."""

import json
import os
import subprocess
import sys

from conftest import write_chapter

from embrepro.book.runner import Runner, discover
from embrepro.book.scorecard import collect, scorecard_markdown

BODY = """
from embrepro.claims import Chapter, Direction, NoLoss
from embrepro.stats import Interval
chapter = Chapter("judged", profile)
chapter.claim("wins", "A beats B", rule=Direction(delta=1.0), paper_value="5", evidence="V", source="T1")
chapter.claim("tie", "A is no worse than B", rule=NoLoss(margin=0.5), paper_value="0", evidence="S", source="T2",
              requires={"scale": "at least 1,000 items"})
chapter.check("anchor", "model scores 82.0", kind="anchor", source="MTEB", expected=82.0, measured=81.9,
              tolerance=0.3)
chapter.decide("wins", Interval(3.0, 2.0, 4.0), measured="3.0")
chapter.decide("tie", Interval(0.0, -1.0, 1.0), measured="0.0", preconditions={"scale": (False, "300 items")})
chapter.save()
"""


def test_scorecard_json_and_page(tiny_project, tmp_path):
    write_chapter(tiny_project / "notebooks" / "part", "judged", 'profile = "book"', BODY, "title: Judged\n")
    (tiny_project / "_toc.yml").write_text(
        "format: jb-book\nroot: intro\nparts:\n  - caption: 'Part X: Tests'\n    chapters:\n"
        "      - file: book/chapters/judged\n")
    chapters = discover(tiny_project)
    outcomes = Runner(chapters, log=lambda line: None).run(["judged"], profile="book")
    assert outcomes[0].status == "ran", outcomes[0].message

    card = collect({"judged": chapters["judged"]}, "book", root=tiny_project)
    by_id = {c["id"]: c for c in card["claims"]}
    assert set(by_id) == {"wins", "tie"}, "checks are not claims"
    assert by_id["wins"]["outcome"] == "reproduced" and by_id["wins"]["kind"] == "direction"
    assert by_id["wins"]["interval"] == [2.0, 4.0] and "at least 1" in by_id["wins"]["rule"]
    assert by_id["tie"]["outcome"] == "not assessable here" and "300 items" in by_id["tie"]["why"]
    assert by_id["wins"]["part"] == "Part X: Tests"
    assert card["checks"] == [{"chapter": "judged", "part": "Part X: Tests", "id": "anchor",
                               "statement": "model scores 82.0", "kind": "anchor",
                               "rule": "Passes when |measured - expected| <= 0.3.", "expected": 82.0,
                               "measured": 81.9, "outcome": "passed", "source": "MTEB"}]

    page = scorecard_markdown({"judged": chapters["judged"]}, "book", figure_dir=tmp_path)
    assert "reproduced: 1" in page and "not assessable here: 1" in page
    assert "Reproduced when the interval" in page            # the rule beside the verdict
    assert "## Checks" in page and "| passed |" in page and "300 items" in page
    assert (tmp_path / "scorecard-outcomes.png").stat().st_size > 1000

    env = {**os.environ, "EMBREPRO_ROOT": str(tiny_project)}
    done = subprocess.run([sys.executable, "-m", "embrepro.book.cli", "scorecard", "--profile", "book", "--json"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout)
    assert {c["id"] for c in printed["claims"] if c["chapter"] == "judged"} == {"wins", "tie"}
    assert "producer" in printed["missing"]
