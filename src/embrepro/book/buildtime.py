"""Cold and warm builds of the whole book, timed on a quiet machine, for the run report.

``make book-timing`` (``benchmarks/book_build.py``) builds the book twice in a fresh cache and
runs folder: *cold* (no run, no embedding, no derived file cached: every chapter runs and every
text is encoded) and then *warm* (every chapter is a cache hit). It writes
``results/build/book-timing.json``; :func:`markdown` turns that into the run report's section, with a
figure of each chapter's cold time.

The book's goals, stated before any measurement: a cold build under :data:`COLD_GOAL_S` seconds
per chapter on average, a warm rebuild under :data:`WARM_GOAL_S` seconds in all.
"""

from __future__ import annotations

import json
from pathlib import Path

from embrepro.paths import project_root

__all__ = ["COLD_GOAL_S", "WARM_GOAL_S", "RESULT", "figure", "load", "markdown", "section", "validate"]

COLD_GOAL_S = 180.0  # mean cold time per chapter (run + its share of the build), issue 12
WARM_GOAL_S = 30.0   # a warm rebuild: every chapter a cache hit, plus the HTML build
RESULT = Path("results") / "build" / "book-timing.json"  # not <profile>.json: results/*/book.json are chapter records

_PHASES = ("run_s", "book_s", "total_s")


class BuildTimeError(ValueError):
    """A ``results/build/book-timing.json`` that lacks what the run report shows."""


def validate(data: dict, source: str = "book.json") -> dict:
    """Check the fields :func:`markdown` reads; return ``data``."""
    if not isinstance(data, dict):
        raise BuildTimeError(f"{source}: must hold a JSON object")
    for build in ("cold", "warm"):
        part = data.get(build)
        if not isinstance(part, dict) or any(not isinstance(part.get(p), (int, float)) for p in _PHASES):
            raise BuildTimeError(f"{source}: '{build}' must give {', '.join(_PHASES)} in seconds")
    chapters = data["cold"].get("chapters")
    if not isinstance(chapters, dict) or not chapters or not all(
            isinstance(v, (int, float)) and v >= 0 for v in chapters.values()):
        raise BuildTimeError(f"{source}: 'cold.chapters' must map each chapter to its run time in seconds")
    for key in ("machine", "date", "jobs"):
        if key not in data:
            raise BuildTimeError(f"{source}: lacks {key!r}")
    return data


def load(root: Path | None = None) -> dict | None:
    """The recorded build times, or None when no build was timed yet."""
    path = (root or project_root()) / RESULT
    if not path.is_file():
        return None
    return validate(json.loads(path.read_text()), str(path))


def figure(data: dict, path: Path) -> Path:
    """Each chapter's cold run time as a horizontal bar (longest on top), with the mean and the goal."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    chapters = sorted(data["cold"]["chapters"].items(), key=lambda kv: -kv[1])
    names, seconds = [c for c, _ in chapters], [s / 60 for _, s in chapters]
    mean = data["cold"]["total_s"] / len(chapters) / 60
    fig, ax = plt.subplots(figsize=(8, 1.0 + 0.28 * len(names)))
    ax.barh(names, seconds, color="#4c72b0")
    ax.axvline(mean, color="black", linestyle="-", linewidth=1, label=f"mean per chapter, whole build ({mean:.2f} min)")
    ax.axvline(COLD_GOAL_S / 60, color="#c44e52", linestyle="--", linewidth=1,
               label=f"goal for the mean ({COLD_GOAL_S / 60:.0f} min)")
    ax.invert_yaxis()
    ax.set_xlabel("cold run time (minutes)")
    ax.set_title("Cold book build: each chapter's run, nothing cached")
    ax.legend(loc="lower right", fontsize=8)
    ax.tick_params(axis="y", labelsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def markdown(data: dict | None, figure_name: str | None = None) -> str:
    """The run report's section on whole-book builds (a short note when none was timed)."""
    lines = ["## Building the whole book", ""]
    if data is None:
        return "\n".join(lines + ["No whole-book build has been timed yet (`make book-timing`).", ""])
    cold, warm = data["cold"], data["warm"]
    n = len(cold["chapters"])
    mean = cold["total_s"] / n
    machine = data["machine"]
    lines += [
        f"Measured on {data['date']} with `make book-timing` on a quiet machine ({machine.get('cpu', 'CPU')}, "
        f"{machine.get('cores', '?')} cores, {machine.get('threads', '?')} threads per chapter, "
        f"MiniLM encodings in {machine.get('precision', '?')}), `--jobs {data['jobs']}`. *Cold*: a fresh cache and "
        "runs folder, so every chapter runs and every text is encoded (once for the whole book: chapters that "
        "encode the same texts with the same model share one encoding). *Warm*: the same build again, every "
        "chapter a cache hit.",
        "",
        "| build | chapters run (s) | HTML build (s) | total (s) | goal |",
        "|---|---|---|---|---|",
        f"| cold | {cold['run_s']:.0f} | {cold['book_s']:.0f} | {cold['total_s']:.0f} "
        f"({mean / 60:.2f} min per chapter) | under {COLD_GOAL_S / 60:.0f} min per chapter: "
        f"{'met' if mean < COLD_GOAL_S else 'not met'} |",
        f"| warm | {warm['run_s']:.0f} | {warm['book_s']:.0f} | {warm['total_s']:.0f} | under {WARM_GOAL_S:.0f} s: "
        f"{'met' if warm['total_s'] < WARM_GOAL_S else 'not met'} |",
        "",
    ]
    if figure_name:
        lines += [f"![Each chapter's cold run time]({figure_name})", ""]
    return "\n".join(lines)


def section(root: Path, figure_dir: Path) -> str:
    """The run report's build section for the project at ``root``, its figure written to ``figure_dir``."""
    data = load(root)
    if data is None:
        return markdown(None)
    return markdown(data, figure(data, figure_dir / "build-times.png").name)
