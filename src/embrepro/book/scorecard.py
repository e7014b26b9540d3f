"""The scorecard: every claim and check of the newest runs at a profile, as JSON and as a page.

``collect(profile)`` reads each chapter's newest run record (:class:`~embrepro.book.record.RunRecord`)
and returns::

    {"profile": "book",
     "claims": [{"chapter": "word2vec", "part": "Part I: Word vectors", "id": "neg_vs_hs",
                 "statement": "...", "kind": "direction", "rule": "Reproduced when ...",
                 "paper_value": "59 vs 47", "evidence": "V", "source": "...", "measured": "...",
                 "estimate": 6.2, "interval": [2.1, 10.3], "outcome": "reproduced",
                 "computed_outcome": "reproduced"}],
     "checks": [{"chapter": "sentence_bert", "part": "...", "id": "minilm_stsb", "statement": "...",
                 "kind": "anchor", "rule": "...", "expected": 82.03, "measured": 82.03,
                 "outcome": "passed"}],
     "missing": ["chapters without a run at this profile"]}

Checks are listed apart and never counted among the outcomes of claims.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import yaml

from embrepro.book.record import RunRecord
from embrepro.claims import evidence_label
from embrepro.book.runner import ChapterSpec, latest_run
from embrepro.paths import project_root

OUTCOMES = ("reproduced", "partly reproduced", "inconclusive", "not reproduced", "not assessable here",
            "not assessed (smoke)")
MARK = {
    "reproduced": "**reproduced**",
    "partly reproduced": "**partly reproduced**",
    "not reproduced": "**not reproduced**",
    "inconclusive": "**inconclusive**",
    "not assessable here": "**not assessable here**",
    "not assessed (smoke)": "not assessed (smoke)",
    "passed": "passed",
    "failed": "**failed**",
}
COLOURS = {"reproduced": "#1b9e77", "partly reproduced": "#e6ab02", "inconclusive": "#bbbbbb",
           "not reproduced": "#d95f02", "not assessable here": "#7570b3", "not assessed (smoke)": "#eeeeee"}
CLAIM_FIELDS = ("id", "statement", "kind", "rule", "paper_value", "evidence", "source", "measured",
                "estimate", "interval", "outcome", "computed_outcome", "why")
CHECK_FIELDS = ("id", "statement", "kind", "rule", "expected", "measured", "outcome", "source")


def parts(root: Path | None = None) -> dict[str, str]:
    """Chapter name -> the caption of its part in ``_toc.yml``."""
    root = root or project_root()
    toc_path = root / "_toc.yml"
    if not toc_path.exists():
        return {}
    toc = yaml.safe_load(toc_path.read_text()) or {}
    found = {}

    def walk(entries, caption):
        for entry in entries or []:
            file = entry.get("file", "")
            if file.startswith("book/chapters/"):
                found[file.rsplit("/", 1)[-1]] = caption
            walk(entry.get("sections"), caption)

    for part in toc.get("parts", []):
        walk(part.get("chapters"), part.get("caption", ""))
    return found


def collect(chapters: dict[str, ChapterSpec], profile: str, root: Path | None = None) -> dict:
    """Every claim and check of the newest run of each chapter at ``profile`` (see the docstring)."""
    part_of = parts(root)
    claims, checks, missing = [], [], []
    for name in chapters:
        folder = latest_run(name, profile)
        if folder is None:
            missing.append(name)
            continue
        record = RunRecord.load(folder / "result.json")
        where = {"chapter": name, "part": part_of.get(name, "")}
        claims += [{**where, **{k: c.get(k) for k in CLAIM_FIELDS}} for c in record.claims]
        checks += [{**where, **{k: c.get(k) for k in CHECK_FIELDS}} for c in record.checks]
    return {"profile": profile, "claims": claims, "checks": checks, "missing": missing}


def to_json(card: dict) -> str:
    return json.dumps(card, indent=2, default=str)


def _cell(text) -> str:
    return "" if text is None else str(text).replace("|", "\\|").replace("\n", " ")


def _interval(claim: dict) -> str:
    iv = claim.get("interval")
    if not iv:
        return ""
    low, high = (float(v) for v in iv)
    return f"[{low:.3g}, {high:.3g}]"


def stacked_bars(ax, names: list[str], series: dict[str, list[int]], colours: dict[str, str],
                 fontsize: int = 8) -> None:
    """Horizontal stacked bars, one row per name (top to bottom), one segment per series (in the
    dict's order, empty series left out of the legend), each segment labelled with its count."""
    left = [0] * len(names)
    for label, counts in series.items():
        if any(counts):
            ax.barh(names, counts, left=left, color=colours[label], edgecolor="white", label=label)
            for row, n in enumerate(counts):
                if n:
                    ax.text(left[row] + n / 2, row, str(n), ha="center", va="center", fontsize=fontsize)
            left = [a + b for a, b in zip(left, counts)]
    ax.invert_yaxis()


def outcome_figure(card: dict, path: Path) -> Path | None:
    """A stacked bar chart of claim outcomes per part, saved as a PNG; None when there are no claims."""
    if not card["claims"]:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_part: dict[str, Counter] = {}
    for c in card["claims"]:
        by_part.setdefault(c["part"] or "(no part)", Counter())[c["outcome"]] += 1
    names = list(by_part)
    fig, ax = plt.subplots(figsize=(9, 1.2 + 0.6 * len(names)))
    stacked_bars(ax, names, {o: [by_part[p][o] for p in names] for o in OUTCOMES}, COLOURS, fontsize=9)
    ax.set_xlabel("claims")
    ax.set_title(f"Outcomes of the book's claims by part ({card['profile']} profile)")
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False, fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=130, bbox_inches="tight")
    plt.close(fig)
    return path


def scorecard_markdown(chapters: dict[str, ChapterSpec], profile: str, figure_dir: Path | None = None) -> str:
    """The scorecard page: totals, a chart per part, each claim with its rule, and the checks."""
    card = collect(chapters, profile)
    counts = Counter(c["outcome"] for c in card["claims"])
    lines = [
        "# Scorecard",
        "",
        "Every claim the book tests, with the paper's value, what this book measured, the rule that",
        "decided it (declared before the result; see {doc}`../verdicts`) and the verdict the chapter's",
        "code computed. A tie is never a win: a difference whose interval includes zero is",
        "*inconclusive*. A claim whose precondition (scale, training, coverage) failed is *not",
        "assessable here*. Evidence labels: **[V]** read in the primary source, **[S]** second-hand,",
        "**[U]** unverified (see {doc}`../intro`).",
        "",
        f"Live runs on this page are at the **{profile}** profile.",
        "",
        "**In all:** " + (", ".join(f"{o}: {counts[o]}" for o in OUTCOMES if counts[o])
                          or "no claims yet") + ".",
        "",
    ]
    figure = outcome_figure(card, (figure_dir or project_root() / "book" / "generated") / "scorecard-outcomes.png")
    if figure is not None:
        lines += ["```{figure} scorecard-outcomes.png", ":alt: Outcomes of the claims, by part of the book",
                  ":width: 90%", "", "Outcomes of the claims, by part. Checks are not counted here.", "```", ""]
    by_chapter: dict[str, list] = {}
    for c in card["claims"]:
        by_chapter.setdefault(c["chapter"], []).append(c)
    for name, spec in chapters.items():
        lines += [f"## {spec.title}", ""]
        if name in card["missing"]:
            lines += [f"*No {profile}-profile run of this chapter yet.*", ""]
            continue
        claims = by_chapter.get(name, [])
        lines += [f"Chapter: {{doc}}`../chapters/{name}`. " + ", ".join(
            f"{n} {o}" for o, n in Counter(c["outcome"] for c in claims).most_common()) + ".", ""]
        for c in claims:
            interval = f"; interval {_interval(c)}" if _interval(c) else ""
            lines += [f"- **{_cell(c['statement'])}**", "",
                      f"  Verdict: {MARK.get(c['outcome'], _cell(c['outcome']))}. Paper: {_cell(c['paper_value'])} "
                      f"({_cell(evidence_label(c['evidence'], c['source']))}). Here: {_cell(c['measured'])}{interval}.", "",
                      f"  *Rule ({_cell(c['kind'])}):* {_cell(c['rule'])}", ""]
            if c.get("why") and c["outcome"] == "not assessable here":
                lines += [f"  *Why:* {_cell(c['why'])}", ""]
        lines.append("")
    lines += ["## Checks", "",
              "Anchor checks (our copy of a model scores what its publishers report), checks that our",
              "code equals an official implementation, and properties that follow from arithmetic. They",
              "pass or fail; they are not claims and are not counted above.", ""]
    if card["checks"]:
        lines += ["| chapter | check | kind | rule | expected | measured | outcome |",
                  "|---|---|---|---|---|---|---|"]
        for k in card["checks"]:
            lines.append(f"| {{doc}}`../chapters/{k['chapter']}` | {_cell(k['statement'])} | {_cell(k['kind'])} | "
                         f"{_cell(k['rule'])} | {_cell(k['expected'])} | {_cell(k['measured'])} | "
                         f"{MARK.get(k['outcome'], _cell(k['outcome']))} |")
    else:
        lines.append("*No checks in these runs.*")
    return "\n".join(lines) + "\n"


def scorecard_text(card: dict) -> str:
    """One line per claim and check, for the terminal."""
    out = []
    for c in card["claims"]:
        out.append(f"{c['chapter']:20s} {str(c['outcome']):22s} [{c['kind']}] {c['statement']}  "
                   f"(paper {c['paper_value']}; here {c['measured']}; interval {_interval(c) or '-'})")
    for k in card["checks"]:
        out.append(f"{k['chapter']:20s} check {str(k['outcome']):16s} [{k['kind']}] {k['statement']}  "
                   f"(expected {k['expected']}; measured {k['measured']})")
    for name in card["missing"]:
        out.append(f"{name:20s} (no {card['profile']}-profile run)")
    return "\n".join(out)
