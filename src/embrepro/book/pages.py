"""Assembling the book from runs: chapter pages, the scorecard, the run report, the data and coverage pages.

``assemble(profile)`` copies each chapter's newest executed notebook at that profile into
``book/chapters/`` and writes the generated pages into ``book/generated/``; ``build()`` runs
Jupyter Book (execution off: papermill already executed everything; warnings are errors).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from embrepro.paths import project_root
from embrepro.book.runner import PROFILES, ChapterSpec, discover, latest_run
from embrepro.book.record import RunRecord
from embrepro.book.scorecard import scorecard_markdown
from embrepro.book import buildtime
from embrepro.book.coverage import coverage_markdown
from embrepro.book.launch import cite_markdown, downloadable

class BookError(RuntimeError):
    pass


def _cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def recorded_results(root: Path | None = None) -> dict[tuple[str, str], dict]:
    """Runs kept under ``results/<chapter>/<profile>.json`` (e.g. paper-profile runs on a GPU)."""
    root = root or project_root()
    out = {}
    for path in sorted((root / "results").glob("*/*.json")):
        if path.stem in PROFILES:
            out[(path.parent.name, path.stem)] = RunRecord.load(path).to_json()
    return out


def run_report_markdown(chapters: dict[str, ChapterSpec]) -> str:
    lines = [
        "# Run report",
        "",
        "Measured cost of the newest run of each chapter at each profile, as recorded by the runner",
        "in the run's `result.json`. *Runtime* is the runner's wall time for the whole run;",
        "*notebook* is the time from the chapter's first cell to its last; the difference is the",
        "runner's overhead (kernel start, papermill, writing the run folder).",
        "",
        "*Precision* is that of the book's cached MiniLM encodings on the machine that ran it",
        "(bf16 where the CPU computes bf16 natively, else fp32: see `embrepro.precision`).",
        "",
        "| chapter | profile | runtime (s) | notebook (s) | overhead (s) | peak memory (MB) | threads | precision | device | finished |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name in chapters:
        for profile in PROFILES:
            folder = latest_run(name, profile)
            if folder is None:
                continue
            r = RunRecord.load(folder / "result.json").to_json()
            overhead = r["runtime_s"] - r["notebook_runtime_s"]
            lines.append(f"| {name} | {profile} | {r['runtime_s']:.1f} | {r['notebook_runtime_s']:.1f} | "
                         f"{overhead:.1f} | {r['peak_memory_mb']:.0f} | {r['threads']} | {r['precision']} | {r['device']} | "
                         f"{r['finished']} |")
    for (chapter, profile), r in recorded_results().items():
        lines.append(f"| {chapter} | {profile} (recorded) | {r['runtime_s']:.1f} | {r['notebook_runtime_s']:.1f} | "
                     f"{r['runtime_s'] - r['notebook_runtime_s']:.1f} | {r['peak_memory_mb']:.0f} | "
                     f"{r['threads']} | {r['precision']} | {r['device']} | {r['finished']} |")
    return "\n".join(lines) + "\n"


def data_markdown(chapters: dict[str, ChapterSpec]) -> str:
    from embrepro.book.online import recipes as manifest_recipes
    from embrepro.data import manifest

    m = manifest()
    recipes = manifest_recipes()
    used: dict[str, list[str]] = {}
    for name, spec in chapters.items():
        for ds in spec.data:
            used.setdefault(ds, []).append(name)
    lines = [
        "# Data and licences",
        "",
        "Every data set the book can load is listed in `data/manifest.yml` with its files, sha256",
        "checksums, source and licence. The book never redistributes the files: they are read from a",
        "local mirror or downloaded from their public source and checked against the manifest.",
        "Several data sets are for **non-commercial research use only** (SICK, SciFact, MRPC among them);",
        "respect each one's terms.",
        "",
        "*Online* says whether every file can be had without the mirror (what a chapter opened on",
        "Colab or Binder does). Most files are downloaded from a public URL. A file with `url: null` was",
        "extracted or derived for the book's mirror; its `recipe` in the manifest makes it again from public",
        "sources (a member of a downloaded archive, a file of a Debian package, a `git archive` of a public",
        "repository, or a conversion written in `embrepro.book.online`), and the result must have the",
        "manifest's sha256, byte for byte. A file with neither URL nor recipe is read only where",
        "`EMBREPRO_DATA` points at a folder holding it.",
        "",
        "| data set | used by | online | licence | cite |",
        "|---|---|---|---|---|",
    ]
    for name, ds in sorted(m.datasets.items(), key=lambda kv: (kv[0] not in used, kv[0])):
        users = ", ".join(f"{{doc}}`../chapters/{c}`" for c in used.get(name, [])) or "—"
        made = sorted({recipes[(name, f)]["kind"] for f, e in ds.files.items() if not e.url and (name, f) in recipes})
        offline = sum(1 for f, e in ds.files.items() if not e.url and (name, f) not in recipes)
        online = (f"no: {offline} of {len(ds.files)} files only in a mirror" if offline else
                  f"yes ({sum(1 for f, e in ds.files.items() if not e.url)} files by recipe: {', '.join(made)})"
                  if made else "yes")
        lines.append(f"| **{_cell(ds.title)}** (`{name}`, {len(ds.files)} files) | {users} | {online} | "
                     f"{_cell(ds.licence)} | {_cell(ds.citation)} |")
    lines += pretrained_models_markdown()
    return "\n".join(lines) + "\n"


def pretrained_models_markdown() -> list[str]:
    """The "Pretrained models" section of the data page: one row per entry of ``models.PRETRAINED``."""
    from embrepro.models import PRETRAINED

    lines = [
        "",
        "## Pretrained models",
        "",
        "The book's pretrained models come from pinned pip packages. Before use, `embrepro.models`",
        "checks each file below against its sha256 and refuses a file that differs.",
        "",
        "| model | package | files (sha256) | licence | cite |",
        "|---|---|---|---|---|",
    ]
    for model in PRETRAINED:
        files = "; ".join(f"`{path}` `{sha}`" for path, sha in model.files)
        lines.append(f"| **{_cell(model.name)}** | `{model.requirement}` | {files} | "
                     f"{_cell(model.licence)} | {_cell(model.citation)} |")
    return lines


def in_book_order(chapters: dict[str, ChapterSpec], root: Path) -> dict[str, ChapterSpec]:
    """The chapters in the order of ``_toc.yml`` (chapters missing from it last)."""
    toc = (root / "_toc.yml").read_text() if (root / "_toc.yml").exists() else ""

    def position(name: str) -> int:
        at = toc.find(f"book/chapters/{name}\n")
        return at if at >= 0 else len(toc) + 1

    return dict(sorted(chapters.items(), key=lambda kv: position(kv[0])))


def assemble(profile: str = "book", root: Path | None = None) -> list[str]:
    """Copy executed chapters and write generated pages. Returns the chapters included."""
    root = root or project_root()
    chapters = in_book_order(discover(root), root)
    missing = [name for name in chapters if latest_run(name, profile) is None]
    if missing:
        raise BookError(
            f"no {profile}-profile run of: {', '.join(missing)}. "
            f"Run `embrepro run --profile {profile}` first (make book does both).")
    out = root / "book" / "chapters"
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    for name, spec in chapters.items():  # with the launch set-up cell, for the download button
        downloadable(latest_run(name, profile) / f"{name}.ipynb", out / f"{name}.ipynb", name, spec.needs, root)
    generated = root / "book" / "generated"
    generated.mkdir(parents=True, exist_ok=True)
    (generated / "scorecard.md").write_text(scorecard_markdown(chapters, profile, figure_dir=generated))
    (generated / "run-report.md").write_text(run_report_markdown(chapters) + "\n"
                                             + buildtime.section(root, figure_dir=generated))
    (generated / "data.md").write_text(data_markdown(chapters))
    (generated / "cite.md").write_text(cite_markdown(root))
    (generated / "coverage.md").write_text(coverage_markdown(chapters, root, figure_dir=generated))
    return list(chapters)


def build(root: Path | None = None, path_output: str | None = None) -> Path:
    """Jupyter Book build into ``<path_output or root>/_build/html``; Sphinx warnings are errors."""
    root = root or project_root()
    jb = Path(sys.executable).with_name("jupyter-book")
    cmd = [str(jb) if jb.exists() else "jupyter-book", "build", str(root), "--warningiserror",
           "--nitpick", "--keep-going"]
    if path_output:
        cmd += ["--path-output", str(path_output)]
    done = subprocess.run(cmd, cwd=root)
    if done.returncode != 0:
        raise BookError(f"the book build failed (exit {done.returncode}); see the warnings above")
    return Path(path_output or root) / "_build" / "html"
