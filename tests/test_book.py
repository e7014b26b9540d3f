import json
import shutil

import pytest

from embrepro.book import pages as book
from embrepro.book.runner import Runner, discover


def test_scorecard_and_run_report_list_every_claim(tiny_project, monkeypatch, tmp_path):
    Runner(discover(tiny_project), log=lambda line: None).run(["producer"], profile="book")
    chapters = {"producer": discover(tiny_project)["producer"]}
    card = book.scorecard_markdown(chapters, "book", figure_dir=tmp_path)
    assert "x beats zero" in card and "Verdict: **reproduced**" in card and "**In all:** reproduced: 1" in card
    report = book.run_report_markdown(chapters)
    row = next(line for line in report.splitlines() if line.startswith("| producer | book"))
    assert float(row.split("|")[3]) > 0  # runtime column holds a measured number


def test_data_page_lists_licences_of_the_chapters_data():
    page = book.data_markdown(discover())
    assert "STS Benchmark" in page and "CC BY-NC-SA 3.0" in page


def _png(path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(1, 1))
    fig.savefig(path)
    plt.close(fig)


@pytest.mark.skipif(shutil.which("chromium") is None, reason="needs Debian's chromium (installed by .ci/run)")
def test_page_check_catches_what_a_reader_would_see(tmp_path):
    from embrepro.book.pagecheck import check_site

    site = tmp_path / "html"
    (site / "book" / "chapters").mkdir(parents=True)
    _png(site / "fig.png")
    (site / "index.html").write_text(
        '<main><h1 id="top">Fine</h1><img src="fig.png"><a href="index.html#top">self</a></main>')
    lines = []
    assert check_site(site, log=lines.append)
    assert lines[-1] == "pages: 1 passed, 0 failed"

    (site / "bad.html").write_text(
        '<main><img src="missing.png"><a href="nowhere.html">x</a><a href="index.html#nope">y</a>'
        '<p>$$x^2$$</p><div class="output traceback"><pre>Traceback (most recent call last):</pre></div></main>'
        '<header><button class="search-button-field">Search</button></header>'
        '<nav><button class="search-button-field">Search</button><button class="search-button" hidden>S</button></nav>')
    (site / "book" / "chapters" / "ch.html").write_text("<main><p>no figure here</p></main>")
    lines = []
    assert not check_site(site, log=lines.append)
    text = "\n".join(lines)
    for problem in ("image does not load: missing.png", "broken link: /nowhere.html", "broken anchor",
                    "raw LaTeX", "traceback", "chapter page has no figure", "2 search boxes shown at once"):
        assert problem in text, problem
    assert lines[-1] == "pages: 1 passed, 2 failed"
