"""Where the project, its caches and the offline data mirror live.

Every location can be overridden by an environment variable, so a reader can put caches on
another disk or point the book at their own copy of the data:

``EMBREPRO_ROOT``   the project folder (default: found from this file, or the working directory)
``EMBREPRO_CACHE``  caches and downloads (default: ``<root>/.cache``)
``EMBREPRO_DATA``   a local mirror of the data sets, one folder per data set
``EMBREPRO_THREADS`` threads a chapter's numeric libraries may use (see :func:`threads`)
"""

from __future__ import annotations

import os
from pathlib import Path


def project_root() -> Path:
    """The project folder: the one holding ``pyproject.toml`` and ``data/manifest.yml``."""
    if os.environ.get("EMBREPRO_ROOT"):
        return Path(os.environ["EMBREPRO_ROOT"]).resolve()
    here = Path(__file__).resolve()
    for candidate in [*here.parents, *Path.cwd().resolve().parents, Path.cwd().resolve()]:
        if (candidate / "pyproject.toml").exists() and (candidate / "data" / "manifest.yml").exists():
            return candidate
    raise RuntimeError(
        "Cannot find the project folder (the one with pyproject.toml and data/manifest.yml). "
        "Set EMBREPRO_ROOT to it."
    )


def cache_dir(*parts: str) -> Path:
    """A folder under the cache, created on first use."""
    base = Path(os.environ["EMBREPRO_CACHE"]) if os.environ.get("EMBREPRO_CACHE") else project_root() / ".cache"
    path = base.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def mirror_dirs() -> list[Path]:
    """Local mirrors of the data, in the order they are searched."""
    found = []
    if os.environ.get("EMBREPRO_DATA"):
        found.append(Path(os.environ["EMBREPRO_DATA"]))
    shared = project_root().parent / "shared" / "data"
    if shared.is_dir():
        found.append(shared)
    return found


def threads() -> int:
    """Threads a chapter's numeric code may use: ``EMBREPRO_THREADS``, else min(2, CPU count).

    A fixed number, not a share of the cores, so that results that depend on it (gensim workers)
    do not change with how many chapters run at once; the runner sets it for every kernel and
    puts it in the cache key. Raises ValueError for a value that is not a positive integer.
    """
    raw = os.environ.get("EMBREPRO_THREADS", "").strip()
    if not raw:
        return min(2, os.cpu_count() or 1)
    if not raw.isdigit() or int(raw) < 1:
        raise ValueError(f"EMBREPRO_THREADS must be a positive integer, got {raw!r}")
    return int(raw)
