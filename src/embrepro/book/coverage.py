"""The coverage page: where each of the seed papers is covered, planned, or why it is not.

Three sources, every paper accounted for exactly once:

* each chapter's ``.yml``: ``seeds: [315, 116]`` (papers it reproduces or substantively tests) and
  ``seeds_partly: [...]`` (papers it covers only in a section or a remark);
* ``book/coverage.yml``: ``chapters_in_progress`` (chapter -> ids, shown as planned until that
  chapter's ``.yml`` declares seeds of its own, which then replace the entry),
  ``planned`` (part -> ids), ``short_section`` (chapter -> ids that would fit as a short section
  of it) and ``out_of_scope`` (id -> reason, where it differs from the catalogue's);
* the catalogue (``catalogue.tsv`` beside ``papers.tsv``): any other paper is out of scope, for
  the catalogue's reason. A priority-1 or -2 paper has no default and must be placed.

Ids are the ``id`` column of ``papers.tsv`` (``paper_id`` in ``catalogue.tsv``); titles come from
``papers.tsv``. The seed folder is ``../shared/seeds`` beside the project, or ``EMBREPRO_SEEDS``;
where it is missing (a clone, the Pages workflow) the committed slim table ``book/seeds.tsv``
(:func:`seeds_table_text`, written by ``embrepro seeds-table``; no abstracts) is read instead, and
without either the page says so instead of failing the build. :class:`CoverageError` names
every problem found: a paper missing, listed twice, or an unknown id.
"""

from __future__ import annotations

import csv
import io
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import yaml

from embrepro.book.runner import UsageError
from embrepro.book.scorecard import stacked_bars
from embrepro.paths import project_root

STATUSES = ("covered", "partly covered", "short section", "planned", "out of scope")
COLOURS = {"covered": "#1b9e77", "partly covered": "#66c2a5", "short section": "#e6ab02",
           "planned": "#7570b3", "out of scope": "#cccccc"}
AREAS = {  # catalogue area -> heading, in the book's order
    "word-vectors": "Word vectors",
    "sentence-embeddings": "Sentence embeddings",
    "geometry-analysis": "Geometry of embedding spaces",
    "retrieval-indexing": "Retrieval and indexing",
    "compression-quantization": "Compression and quantization",
    "evaluation-benchmarks": "Evaluation and benchmarks",
    "llm-embedders": "LLM-based embedders",
    "knowledge-graphs-graphs": "Graphs and knowledge graphs",
    "multimodal-vision": "Multimodal and vision",
    "speech-audio": "Speech and audio",
    "other": "Other",
}
PLAN_KEYS = {"chapters_in_progress", "planned", "short_section", "out_of_scope"}


class CoverageError(UsageError):
    """The chapters' seeds and ``book/coverage.yml`` do not account for every paper exactly once."""


@dataclass(frozen=True)
class Paper:
    id: int
    title: str
    area: str
    priority: int | None  # 1 = core chapter candidate ... 3; 0 = out of scope; None = not given
    reproducible: str     # yes / partial / no
    needs: str


@dataclass(frozen=True)
class Entry:
    paper: Paper
    status: str              # one of STATUSES
    chapter: str | None = None  # covered, partly covered, short section, planned chapter
    note: str = ""           # the part (planned) or the reason (out of scope)


def seeds_dir() -> Path:
    if os.environ.get("EMBREPRO_SEEDS"):
        return Path(os.environ["EMBREPRO_SEEDS"])
    return project_root().parent / "shared" / "seeds"


def _rows(path: Path) -> list[dict]:
    csv.field_size_limit(1 << 30)  # abstracts are long
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


def load_papers(folder: Path) -> dict[int, Paper]:
    """``papers.tsv`` joined with ``catalogue.tsv`` by id; the two must list the same papers."""
    papers = {int(r["id"]): r["title"].strip() for r in _rows(folder / "papers.tsv")}
    catalogue = {int(r["paper_id"]): r for r in _rows(folder / "catalogue.tsv")}
    problems = [f"paper {i} ({papers[i]}) has no row in catalogue.tsv" for i in sorted(set(papers) - set(catalogue))]
    problems += [f"catalogue.tsv row {i} is not in papers.tsv" for i in sorted(set(catalogue) - set(papers))]
    problems += [f"paper {i}: papers.tsv and catalogue.tsv give different titles"
                 for i in sorted(set(papers) & set(catalogue)) if catalogue[i]["title"].strip() != papers[i]]
    if problems:
        raise CoverageError(f"{folder}: " + "; ".join(problems))
    return {i: Paper(i, papers[i], catalogue[i]["area"].strip() or "other",
                     int(catalogue[i]["priority"]) if catalogue[i]["priority"].strip() else None,
                     catalogue[i]["reproducible_here"].strip(), catalogue[i]["needs"].strip())
            for i in sorted(papers)}


SEEDS_TABLE = "book/seeds.tsv"
TABLE_COLUMNS = ("id", "title", "area", "priority", "reproducible_here", "needs")


def seeds_table_text(folder: Path) -> str:
    """The slim seed table (:data:`SEEDS_TABLE`): per paper what the coverage page uses, from
    ``papers.tsv`` and ``catalogue.tsv`` (no abstracts). ``embrepro seeds-table`` writes it, so
    that a clone without the seed folder (the Pages workflow) still builds the page."""
    out = io.StringIO()
    writer = csv.writer(out, delimiter="\t", lineterminator="\n")
    writer.writerow(TABLE_COLUMNS)
    for p in load_papers(folder).values():
        writer.writerow([p.id, p.title, p.area, "" if p.priority is None else p.priority, p.reproducible, p.needs])
    return out.getvalue()


def load_table(path: Path) -> dict[int, Paper]:
    """The papers of the slim seed table, as :func:`load_papers` gives them."""
    rows = _rows(path)
    if not rows or tuple(rows[0]) != TABLE_COLUMNS:
        raise CoverageError(f"{path}: expected the columns {', '.join(TABLE_COLUMNS)}")
    return {int(r["id"]): Paper(int(r["id"]), r["title"], r["area"] or "other",
                                int(r["priority"]) if r["priority"].strip() else None,
                                r["reproducible_here"], r["needs"]) for r in rows}


def load_plan(path: Path) -> dict:
    """``book/coverage.yml``, checked for shape (an absent file is an empty plan)."""
    plan = (yaml.safe_load(path.read_text()) if path.exists() else None) or {}
    if not isinstance(plan, dict) or set(plan) - PLAN_KEYS:
        raise CoverageError(f"{path}: must be a mapping with keys {sorted(PLAN_KEYS)}")
    for key in PLAN_KEYS:
        section = plan.get(key) or {}
        if not isinstance(section, dict):
            raise CoverageError(f"{path}: {key} must be a mapping")
        for name, value in section.items():
            if key == "out_of_scope":
                if not isinstance(name, int) or not isinstance(value, str) or not value.strip():
                    raise CoverageError(f"{path}: out_of_scope maps a paper id to its reason, got {name!r}: {value!r}")
            elif not isinstance(value, list) or not all(isinstance(x, int) and not isinstance(x, bool) for x in value):
                raise CoverageError(f"{path}: {key}.{name} must be a list of paper ids, got {value!r}")
        plan[key] = dict(section)
    return plan


def default_reason(paper: Paper) -> str:
    """The catalogue's judgement, as the reason a paper is out of scope."""
    if paper.reproducible == "no":
        return "not reproducible here" + (f": it needs {paper.needs}" if paper.needs else "")
    return (f"outside the book's focus (catalogue priority {paper.priority})"
            + (f"; a small test would need {paper.needs}" if paper.needs else ""))


def account(papers: dict[int, Paper], chapters: dict, plan: dict) -> dict[int, Entry]:
    """Each paper's entry; :class:`CoverageError` lists every paper missing, listed twice or unknown."""
    claims: list[tuple[int, str, Entry | None]] = []  # (id, where it is listed, entry without paper)
    for name, spec in chapters.items():
        where = f"chapter {name} ({spec.notebook.with_suffix('.yml').name})"
        claims += [(i, f"{where} seeds", Entry(None, "covered", name)) for i in spec.seeds]
        claims += [(i, f"{where} seeds_partly", Entry(None, "partly covered", name)) for i in spec.seeds_partly]
    for name, ids in plan["chapters_in_progress"].items():
        if name in chapters and (chapters[name].seeds or chapters[name].seeds_partly):
            continue  # the chapter now declares its own seeds: its .yml wins
        claims += [(i, f"coverage.yml chapters_in_progress.{name}", Entry(None, "planned", name, "in progress"))
                   for i in ids]
    for part, ids in plan["planned"].items():
        claims += [(i, f"coverage.yml planned {part!r}", Entry(None, "planned", None, part)) for i in ids]
    known_chapters = set(chapters) | set(plan["chapters_in_progress"])
    problems = [f"coverage.yml short_section names {name!r}, which is not a chapter"
                for name in plan["short_section"] if name not in known_chapters]
    for name, ids in plan["short_section"].items():
        claims += [(i, f"coverage.yml short_section.{name}", Entry(None, "short section", name)) for i in ids]
    claims += [(i, "coverage.yml out_of_scope", Entry(None, "out of scope", None, reason.strip()))
               for i, reason in plan["out_of_scope"].items()]

    entries: dict[int, Entry] = {}
    first: dict[int, str] = {}
    for i, where, entry in claims:
        if i not in papers:
            problems.append(f"{where} names seed paper {i}, which is not in papers.tsv")
        elif i in first:
            problems.append(f"seed paper {i} ({papers[i].title}) is listed twice: in {first[i]} and in {where}")
        else:
            first[i] = where
            entries[i] = Entry(papers[i], entry.status, entry.chapter, entry.note)
    for i, paper in papers.items():
        if i in entries:
            continue
        if paper.priority in (1, 2):
            problems.append(f"seed paper {i} ({paper.title}) is missing: no chapter covers it and, being "
                            f"catalogue priority {paper.priority}, it needs a place in book/coverage.yml "
                            f"(short_section, planned or out_of_scope)")
        else:
            entries[i] = Entry(paper, "out of scope", None, default_reason(paper))
    if problems:
        raise CoverageError("seed-paper coverage: " + "\n  ".join(["", *problems]))
    return dict(sorted(entries.items()))


def _cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _where(entry: Entry, linked: set[str], part_of: dict[str, str]) -> str:
    def chapter(name):
        return f"{{doc}}`../chapters/{name}`" if name in linked else f"*{name}*"

    if entry.status in ("covered", "partly covered", "short section"):
        return chapter(entry.chapter)
    if entry.chapter:  # a chapter being written
        return f"chapter {chapter(entry.chapter)}, being written ({_cell(part_of.get(entry.chapter, 'a later part'))})"
    return _cell(entry.note)


def counts_by_area(entries: dict[int, Entry]) -> dict[str, Counter]:
    areas = {}
    for entry in entries.values():
        areas.setdefault(entry.paper.area, Counter())[entry.status] += 1
    order = list(AREAS)
    return dict(sorted(areas.items(), key=lambda kv: (order.index(kv[0]) if kv[0] in order else len(order), kv[0])))


def coverage_figure(entries: dict[int, Entry], path: Path) -> Path:
    """Stacked horizontal bars: papers per area by status, saved as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    areas = counts_by_area(entries)
    names = [AREAS.get(a, a) for a in areas]
    fig, ax = plt.subplots(figsize=(8, 1.6 + 0.4 * len(names)))
    stacked_bars(ax, names, {s: [c[s] for c in areas.values()] for s in STATUSES}, COLOURS)
    ax.set_xlabel("seed papers")
    ax.set_title(f"Where the book covers the {len(entries)} seed papers, by area")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=len(STATUSES), frameon=False, fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=130, bbox_inches="tight")
    plt.close(fig)
    return path


INTRO = [
    "# Coverage of the seed papers",
    "",
    "The book's scope is a collection of research papers about embeddings, its *seed papers*. This",
    "page lists every one of them, grouped by area, with where the book covers it: the chapter that",
    "reproduces it (*covered*), a chapter that takes it up in a section or a remark (*partly",
    "covered*), a chapter where it would fit as a short section that is not written yet (*short",
    "section*), the part where a chapter on it is planned (*planned*), or why it is *out of scope*",
    "here. Chapters declare their papers in their `.yml` (`seeds:`, `seeds_partly:`); `book/coverage.yml`",
    "places the rest. A paper placed nowhere is out of scope for the reason the seed catalogue gives",
    "(a first judgement under the book's constraints: a CPU, one pretrained encoder, public data).",
    "",
]


def coverage_markdown(chapters: dict, root: Path | None = None, figure_dir: Path | None = None,
                      seeds: Path | None = None) -> str:
    """The coverage page (see the module docstring); the chapters given are linked."""
    from embrepro.book.scorecard import parts

    root = root or project_root()
    seeds = seeds or seeds_dir()
    if (seeds / "papers.tsv").exists() and (seeds / "catalogue.tsv").exists():
        papers = load_papers(seeds)
    elif (root / SEEDS_TABLE).exists():  # a clone without the seed folder: the committed slim table
        papers = load_table(root / SEEDS_TABLE)
    else:
        return "\n".join(INTRO + [f"*The seed-paper list is not available here: `{seeds}` should hold",
                                  "`papers.tsv` and `catalogue.tsv` (set `EMBREPRO_SEEDS` to its folder),",
                                  f"or the project `{SEEDS_TABLE}`.*", ""])
    entries = account(papers, chapters, load_plan(root / "book" / "coverage.yml"))
    totals = Counter(e.status for e in entries.values())
    areas = counts_by_area(entries)
    lines = INTRO + ["**In all:** " + ", ".join(f"{s}: {totals[s]}" for s in STATUSES)
                     + f" (of {len(entries)} papers).", ""]
    figure = coverage_figure(entries, (figure_dir or root / "book" / "generated") / "coverage-areas.png")
    lines += [f"```{{figure}} {figure.name}", ":alt: Seed papers per area, by where the book covers them",
              ":width: 100%", "", "Seed papers per area, by where the book covers them.", "```", "",
              "| area | " + " | ".join(STATUSES) + " | papers |",
              "|---|" + "---|" * (len(STATUSES) + 1)]
    for area, count in areas.items():
        lines.append(f"| {AREAS.get(area, area)} | " + " | ".join(str(count[s]) for s in STATUSES)
                     + f" | {sum(count.values())} |")
    lines += ["| **all** | " + " | ".join(f"**{totals[s]}**" for s in STATUSES) + f" | **{len(entries)}** |", ""]
    part_of, linked = parts(root), set(chapters)
    order = {s: k for k, s in enumerate(STATUSES)}
    for area in areas:
        rows = sorted((e for e in entries.values() if e.paper.area == area), key=lambda e: (order[e.status], e.paper.id))
        lines += [f"## {AREAS.get(area, area)} ({len(rows)})", "", "| paper | status | where, or why not |", "|---|---|---|"]
        lines += [f"| {_cell(e.paper.title)} | {e.status} | {_where(e, linked, part_of)} |" for e in rows]
        lines.append("")
    return "\n".join(lines)
