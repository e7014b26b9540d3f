"""The coverage page: every seed paper accounted for exactly once, and listed on the page."""

import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from conftest import write_chapter
from embrepro.book import coverage as cv
from embrepro.book.runner import discover

HEADER_PAPERS = "id\ttitle\tseed_files\tabstract\n"
HEADER_CATALOGUE = "paper_id\ttitle\tarea\tcore_claim\treproducible_here\texperiment\tneeds\tcpu_cost\tpriority\n"
# id, title, area, reproducible_here, needs, priority
TINY = [(0, "Word Vectors at Small Scale", "word-vectors", "yes", "gensim", 1),
        (1, "A Sentence Encoder | With a Pipe", "sentence-embeddings", "partial", "MiniLM", 2),
        (2, "Pictures and Words", "multimodal-vision", "no", "image data (unavailable)", 0),
        (3, "A Peripheral Study", "other", "partial", "a corpus", 3)]


def write_seeds(folder: Path, rows=TINY, catalogue_rows=None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "papers.tsv").write_text(HEADER_PAPERS + "".join(f"{i}\t{t}\tx.txt\tAn abstract.\n" for i, t, *_ in rows))
    (folder / "catalogue.tsv").write_text(HEADER_CATALOGUE + "".join(
        f"{i}\t{t}\t{area}\tclaim\t{rep}\texp\t{needs}\t5\t{prio}\n"
        for i, t, area, rep, needs, prio in (catalogue_rows or rows)))
    return folder


def chapter(seeds=(), partly=()):
    return SimpleNamespace(seeds=list(seeds), seeds_partly=list(partly), notebook=Path("notebooks/part/x.ipynb"))


def plan(**sections):
    return {key: dict(sections.get(key, {})) for key in cv.PLAN_KEYS}


@pytest.fixture
def papers(tmp_path):
    return cv.load_papers(write_seeds(tmp_path / "seeds"))


def test_every_paper_is_accounted_for_with_the_catalogue_as_default(papers):
    entries = cv.account(papers, {"w2v": chapter([0])}, plan(short_section={"w2v": [1]}))
    assert [entries[i].status for i in range(4)] == ["covered", "short section", "out of scope", "out of scope"]
    assert entries[0].chapter == "w2v" and entries[1].chapter == "w2v"
    assert "not reproducible here" in entries[2].note and "image data" in entries[2].note
    assert "priority 3" in entries[3].note
    entries = cv.account(papers, {"w2v": chapter([0], [1])}, plan(out_of_scope={3: "a chapter found it needs X"}))
    assert entries[1].status == "partly covered" and entries[3].note == "a chapter found it needs X"


def test_a_missing_priority_paper_is_named(papers):
    with pytest.raises(cv.CoverageError, match=r"seed paper 1 \(A Sentence Encoder \| With a Pipe\) is missing"):
        cv.account(papers, {"w2v": chapter([0])}, plan())


def test_a_paper_listed_twice_is_an_error_naming_both_places(papers):
    with pytest.raises(cv.CoverageError, match=r"seed paper 0 .* listed twice: in chapter w2v .* and in coverage.yml"):
        cv.account(papers, {"w2v": chapter([0, 1])}, plan(planned={"Part IX": [0]}))
    with pytest.raises(cv.CoverageError, match="listed twice"):
        cv.account(papers, {"a": chapter([0, 1]), "b": chapter(partly=[1])}, plan())


def test_an_unknown_seed_or_chapter_is_an_error(papers):
    with pytest.raises(cv.CoverageError, match=r"chapter w2v \(x.yml\) seeds names seed paper 99"):
        cv.account(papers, {"w2v": chapter([0, 1, 99])}, plan())
    with pytest.raises(cv.CoverageError, match="short_section names 'nowhere', which is not a chapter"):
        cv.account(papers, {"w2v": chapter([0])}, plan(short_section={"nowhere": [1]}))
    # a chapter being written is a valid short-section target
    entries = cv.account(papers, {}, plan(chapters_in_progress={"geo": [0]}, short_section={"geo": [1]}))
    assert entries[0].status == "planned" and entries[1].chapter == "geo"
    # once the chapter declares seeds, its .yml replaces the in-progress entry; a paper it drops is missing
    entries = cv.account(papers, {"geo": chapter([0, 1])}, plan(chapters_in_progress={"geo": [0, 1]}))
    assert entries[0].status == entries[1].status == "covered"
    with pytest.raises(cv.CoverageError, match="seed paper 1 .* is missing"):
        cv.account(papers, {"geo": chapter([0])}, plan(chapters_in_progress={"geo": [0, 1]}))


def test_the_two_seed_tables_must_agree(tmp_path):
    rows = [*TINY[:3], (3, "Another Title", "other", "partial", "x", 3)]
    with pytest.raises(cv.CoverageError, match="paper 3: papers.tsv and catalogue.tsv give different titles"):
        cv.load_papers(write_seeds(tmp_path / "a", catalogue_rows=rows))
    with pytest.raises(cv.CoverageError, match=r"paper 3 \(A Peripheral Study\) has no row in catalogue.tsv"):
        cv.load_papers(write_seeds(tmp_path / "b", catalogue_rows=TINY[:3]))


def test_coverage_yml_shape_is_checked(tmp_path):
    path = tmp_path / "coverage.yml"
    for bad in ("planned: [1, 2]\n", "short_section: {w2v: [one]}\n", "out_of_scope: {3: ''}\n", "extra: {}\n"):
        path.write_text(bad)
        with pytest.raises(cv.CoverageError):
            cv.load_plan(path)


def test_chapter_specs_declare_seeds(tiny_project):
    folder = tiny_project / "notebooks" / "part"
    write_chapter(folder, "good", 'profile = "book"', "pass", "title: G\nseeds: [3, 1]\nseeds_partly: [2]\n")
    for name, spec in (("word", "seeds: [one]\n"), ("flag", "seeds: [true]\n"), ("twice", "seeds: [1, 1]\n"),
                       ("both", "seeds: [1]\nseeds_partly: [1]\n")):
        write_chapter(folder, name, 'profile = "book"', "pass", "title: T\n" + spec)
    chapters = discover(tiny_project)
    assert chapters["good"].seeds == [3, 1] and chapters["good"].seeds_partly == [2]
    assert chapters["producer"].seeds == []
    for name, message in (("word", "seeds must be a list of seed-paper ids"), ("flag", "seeds must be a list"),
                          ("twice", "lists a seed paper twice"), ("both", "in both seeds and seeds_partly")):
        assert message in chapters.broken[name], name


def table_rows(page: str, first_cell: str) -> list[list[str]]:
    return [[c.strip() for c in line.strip("|").split(" | ")] for line in page.splitlines()
            if line.startswith(f"| {first_cell}")]


def check_page(page: str, entries: dict):
    for entry in entries.values():
        assert f"| {cv._cell(entry.paper.title)} | {entry.status} |" in page, entry.paper.title
    totals = table_rows(page, "**all**")[0]
    numbers = [int(x.strip("*")) for x in totals[1:]]
    assert sum(numbers[:-1]) == numbers[-1] == len(entries)
    for status, n in zip(cv.STATUSES, numbers):
        assert n == sum(e.status == status for e in entries.values())
        assert f"{status}: {n}" in page
    area_rows = [r for area in cv.AREAS.values() for r in table_rows(page, area + " |")]
    assert [sum(int(r[k]) for r in area_rows) for k in range(1, len(numbers) + 1)] == numbers
    for r in area_rows:
        assert sum(map(int, r[1:-1])) == int(r[-1])
    headings = re.findall(r"^## .* \((\d+)\)$", page, flags=re.M)
    assert sum(map(int, headings)) == len(entries)


def test_the_page_lists_every_title_and_counts_add_up(tmp_path):
    seeds = write_seeds(tmp_path / "seeds")
    root = tmp_path / "project"
    (root / "book").mkdir(parents=True)
    (root / "book" / "coverage.yml").write_text("short_section:\n  w2v: [1]\n")
    chapters = {"w2v": chapter([0])}
    page = cv.coverage_markdown(chapters, root, figure_dir=tmp_path / "gen", seeds=seeds)
    check_page(page, cv.account(cv.load_papers(seeds), chapters, plan(short_section={"w2v": [1]})))
    assert "{doc}`../chapters/w2v`" in page and (tmp_path / "gen" / "coverage-areas.png").stat().st_size > 0
    assert "A Sentence Encoder \\| With a Pipe" in page


def test_without_the_seed_folder_the_page_says_so(tmp_path):
    page = cv.coverage_markdown({}, tmp_path, figure_dir=tmp_path, seeds=tmp_path / "nowhere")
    assert page.startswith("# Coverage") and "not available here" in page and "nowhere" in page


REAL_SEEDS = cv.seeds_dir()


@pytest.mark.skipif(not (REAL_SEEDS / "papers.tsv").exists(), reason="needs ../shared/seeds beside the project")
def test_the_repository_accounts_for_all_356_papers_exactly_once(tmp_path):
    papers = cv.load_papers(REAL_SEEDS)
    assert len(papers) == 356
    chapters = discover()
    plan_ = cv.load_plan(Path(__file__).resolve().parents[1] / "book" / "coverage.yml")
    entries = cv.account(papers, chapters, plan_)  # raises on a paper missing, twice or unknown
    assert sorted(entries) == sorted(papers)
    for name in ("word2vec", "sentence_bert", "limit"):  # one chapter per written part
        assert chapters[name].seeds, name
    assert {entries[315].chapter, entries[116].chapter} == {"word2vec"}
    page = cv.coverage_markdown(chapters, figure_dir=tmp_path)
    check_page(page, entries)


def test_the_slim_seed_table_gives_the_same_papers_and_page(tmp_path):
    seeds = write_seeds(tmp_path / "seeds", rows=[*TINY, (4, 'A "Quoted" Title\twith a tab', "other", "yes", "", "")])
    text = cv.seeds_table_text(seeds)
    assert text.splitlines()[0].split("\t") == list(cv.TABLE_COLUMNS) and "abstract" not in text.lower()
    root = tmp_path / "project"
    (root / "book").mkdir(parents=True)
    (root / cv.SEEDS_TABLE).write_text(text)
    assert cv.load_table(root / cv.SEEDS_TABLE) == cv.load_papers(seeds)
    (root / "book" / "coverage.yml").write_text("short_section:\n  w2v: [1]\n")
    chapters = {"w2v": chapter([0])}
    full = cv.coverage_markdown(chapters, root, figure_dir=tmp_path / "a", seeds=seeds)
    slim = cv.coverage_markdown(chapters, root, figure_dir=tmp_path / "b", seeds=tmp_path / "nowhere")
    assert slim == full and "not available" not in slim
    (root / cv.SEEDS_TABLE).write_text("id\ttitle\n1\tx\n")
    with pytest.raises(cv.CoverageError, match="expected the columns"):
        cv.load_table(root / cv.SEEDS_TABLE)


@pytest.mark.skipif(not (REAL_SEEDS / "papers.tsv").exists(), reason="needs ../shared/seeds beside the project")
def test_the_committed_seed_table_is_what_the_command_writes_from_the_seed_folder():
    committed = Path(__file__).resolve().parents[1] / cv.SEEDS_TABLE
    assert committed.read_text() == cv.seeds_table_text(REAL_SEEDS), "run `embrepro seeds-table`"
