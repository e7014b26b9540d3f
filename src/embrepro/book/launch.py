"""Launching a chapter on Colab or Binder: the set-up cell, the launch links, the repository setting.

**The set-up cell.** Every chapter notebook (``notebooks/<part>/<chapter>.ipynb``) has one code
cell tagged ``launch-setup`` (and ``remove-cell``, so the page does not show it), the first code
cell after the title. :func:`setup_source` writes it; ``embrepro launch-cells`` inserts or updates
it in every chapter (idempotent), and a test checks that each chapter holds the current one. The
runner leaves the cell out of a chapter's cache key (:data:`embrepro.book.runner.LAUNCH_TAG`), so
adding or changing it never stales a run. What it does:

* under the book's runner (``EMBREPRO_RUNNER=1``): nothing;
* where the ``embrepro`` package cannot be imported (Colab): clones the repository and installs it
  with its pinned dependencies (CPU torch);
* then :func:`prepare`: nothing when every data file the chapter reads is already on this machine
  (a local reader in the project); otherwise downloads the missing files from their public URLs,
  each checked against the manifest's sha256, and stops naming the files that have no public URL.
  A chapter that reads another chapter's artefact (``needs:``) gets it by running that chapter
  with the book's runner after the parameters cell.

**The launch links.** Jupyter Book points its launch buttons at the page's own path
(``book/chapters/<chapter>.ipynb``, a generated copy that is not in the repository). As a Sphinx
extension (``_config.yml``: ``sphinx.extra_extensions``) this module points them at the source
notebook instead (:func:`source_path`).

**The repository** is one setting, ``repository.url`` in ``_config.yml`` (:func:`repository`):
the theme's repository, issue and launch buttons, the set-up cell and the cite block use it;
``CITATION.cff`` repeats it and a test keeps the two equal.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from embrepro.book.runner import LAUNCH_TAG, discover
from embrepro.paths import project_root

CPU_TORCH = "https://download.pytorch.org/whl/cpu"
PLACEHOLDER = "YOUR-GITHUB-ACCOUNT"  # in repository.url until the book has a public repository
CELL_ID = "launch-setup"

SETUP = '''\
# Set-up for Colab and Binder (a cell tagged launch-setup; the book's runner leaves it out of the
# chapter's cache key). In the book's own project it does nothing. Elsewhere it installs the book's
# package from its repository and downloads this chapter's data from their public sources, each file
# checked against its sha256 (data/manifest.yml). If pip replaced a library that was already loaded,
# restart the runtime and run the notebook again.
import os, subprocess, sys

CHAPTER = "{chapter}"
REPOSITORY, BRANCH = "{url}", "{branch}"
if os.environ.get("EMBREPRO_RUNNER") != "1":
    try:
        import embrepro
    except ImportError:  # Colab: clone the book and install it with its pinned dependencies
        folder = os.path.abspath(REPOSITORY.rstrip("/").rsplit("/", 1)[-1])
        if not os.path.isdir(folder):
            subprocess.run(["git", "clone", "--depth", "1", "--branch", BRANCH, REPOSITORY, folder], check=True)
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--extra-index-url",
                        "{cpu_torch}", "-e", folder], check=True)
        os.environ["EMBREPRO_ROOT"] = folder
        sys.path.insert(0, os.path.join(folder, "src"))
    from embrepro.book.launch import prepare

    prepare(CHAPTER)'''


def _config(root: Path | None = None) -> dict:
    path = (root or project_root()) / "_config.yml"
    return (yaml.safe_load(path.read_text()) if path.exists() else None) or {}


def repository(root: Path | None = None) -> dict:
    """``repository:`` of ``_config.yml``: ``url`` (no trailing slash) and ``branch`` (default main)."""
    repo = _config(root).get("repository") or {}
    return {"url": str(repo.get("url", "")).rstrip("/"), "branch": str(repo.get("branch") or "main")}


def github_slug(url: str) -> str:
    """``owner/name`` of a GitHub repository URL."""
    prefix = "https://github.com/"
    if not url.startswith(prefix) or url[len(prefix):].count("/") != 1:
        raise ValueError(f"repository.url in _config.yml must be https://github.com/OWNER/NAME, got {url!r}")
    return url[len(prefix):]


def source_path(chapter: str, root: Path | None = None) -> str:
    """The repository path of a chapter's source notebook (``notebooks/<part>/<chapter>.ipynb``)."""
    root = Path(root or project_root())
    spec = discover(root).get(chapter)
    if spec is None:
        raise KeyError(f"no chapter {chapter!r} under {root / 'notebooks'}")
    return spec.notebook.resolve().relative_to(root.resolve()).as_posix()


def launch_urls(chapter: str, root: Path | None = None) -> dict[str, str]:
    """Colab and Binder links that open the chapter's source notebook from the repository."""
    repo = repository(root)
    slug, path = github_slug(repo["url"]), source_path(chapter, root)
    return {"colab": f"https://colab.research.google.com/github/{slug}/blob/{repo['branch']}/{path}",
            "binder": f"https://mybinder.org/v2/gh/{slug}/{repo['branch']}?urlpath=tree/{path}"}


def cite_markdown(root: Path | None = None) -> str:
    """The intro page's "cite this book" block (``book/generated/cite.md``), from ``CITATION.cff``
    and ``repository.url``."""
    root = Path(root or project_root())
    cff = yaml.safe_load((root / "CITATION.cff").read_text())
    url = repository(root)["url"]
    authors = " and ".join("{" + a["name"] + "}" if "name" in a else f"{a['family-names']}, {a['given-names']}"
                           for a in cff["authors"])
    year = str(cff.get("date-released", ""))[:4]
    title = cff["title"]
    main_title, _, subtitle = title.partition(": ")
    plain_authors = " and ".join(a.get("name") or f"{a['given-names']} {a['family-names']}" for a in cff["authors"])
    return "\n".join([
        "If you use the book, its code or its verdicts, please cite it (the repository's `CITATION.cff`",
        "says the same; GitHub shows it as *Cite this repository*):",
        "",
        f"> {plain_authors} ({year}). *{title}*, version {cff['version']}. <{url}>",
        "",
        "```bibtex",
        "@software{embeddings_reproduced,",
        f"  title = {{{main_title}: {subtitle}}}," if not subtitle or len(title) < 56 else
        f"  title = {{{main_title}:\n           {subtitle}}},",
        f"  author = {{{authors}}},",
        f"  year = {{{year}}},",
        f"  version = {{{cff['version']}}},",
        f"  license = {{{cff['license']}}},",
        f"  url = {{{url}}}",
        "}",
        "```",
        "",
        "Cite the papers themselves for their methods and results: each chapter lists its references.",
        ""])


# --- the set-up cell ------------------------------------------------------------------------

def setup_source(chapter: str, root: Path | None = None) -> str:
    repo = repository(root)
    return SETUP.format(chapter=chapter, url=repo["url"], branch=repo["branch"], cpu_torch=CPU_TORCH)


def setup_cell(chapter: str, root: Path | None = None) -> dict:
    """The current set-up cell of a chapter, as a notebook cell without outputs."""
    return {"cell_type": "code", "execution_count": None, "id": CELL_ID,
            "metadata": {"tags": [LAUNCH_TAG, "remove-cell"]}, "outputs": [],
            "source": setup_source(chapter, root).splitlines(keepends=True)}


def is_setup(cell: dict) -> bool:
    return LAUNCH_TAG in cell.get("metadata", {}).get("tags", [])


def with_setup_cell(nb: dict, chapter: str, root: Path | None = None) -> dict:
    """``nb`` with exactly one set-up cell, the current one, after the leading markdown cells."""
    cells = [c for c in nb["cells"] if not is_setup(c)]
    at = next((i for i, c in enumerate(cells) if c["cell_type"] != "markdown"), len(cells))
    at = min(at, 1)  # right after the title cell
    cell = setup_cell(chapter, root)
    if nb.get("nbformat", 4) == 4 and nb.get("nbformat_minor", 5) < 5:
        cell.pop("id")
    return {**nb, "cells": [*cells[:at], cell, *cells[at:]]}


def _dump(nb: dict, ascii_only: bool) -> str:
    return json.dumps(nb, indent=1, ensure_ascii=ascii_only) + "\n"


def write_notebook(nb: dict, path: Path, like: str | None = None) -> None:
    """As nbformat writes it (one-space indent, final newline), atomically; non-ASCII characters
    escaped or not as in ``like`` (the file's old text), so that only the changed cells differ."""
    ascii_only = like is not None and _dump(json.loads(like), True) == like
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(_dump(nb, ascii_only), encoding="utf-8")
    os.replace(tmp, path)


def update_setup_cells(root: Path | None = None, check: bool = False) -> list[str]:
    """Insert or update the set-up cell of every chapter; the chapters changed (or, with
    ``check``, that would change). Running it twice changes nothing the second time."""
    root = Path(root or project_root())
    changed = []
    for name, spec in sorted(discover(root).items()):
        text = spec.notebook.read_text(encoding="utf-8")
        nb = json.loads(text)
        new = with_setup_cell(nb, name, root)
        if new != nb:
            changed.append(name)
            if not check:
                write_notebook(new, spec.notebook, like=text)
    return changed


def downloadable(source: Path, target: Path, chapter: str, needs: dict | None = None,
                 root: Path | None = None) -> Path:
    """An executed notebook copied for the book's page and its download button: with the current
    set-up cell (runs made before the cell existed lack it) and the parameters the runner filled
    with another chapter's artefact path (``needs``) emptied, so that the set-up cell fills them
    wherever the notebook is opened."""
    nb = with_setup_cell(json.loads(Path(source).read_text(encoding="utf-8")), chapter, root)
    for cell in nb["cells"]:
        if needs and "injected-parameters" in cell.get("metadata", {}).get("tags", []):
            lines = "".join(cell["source"]).splitlines(keepends=True)
            cell["source"] = [f'{line.split("=", 1)[0].strip()} = ""\n'
                              if line.split("=", 1)[0].strip() in needs else line for line in lines]
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return target


# --- what the cell does outside the project --------------------------------------------------

def chapter_files(chapter: str, root: Path | None = None) -> list[tuple[str, str]]:
    """(data set, file) for every data file a chapter declares (as the runner's preflight reads them)."""
    from embrepro.data import manifest

    spec = discover(root)[chapter]
    out = []
    for entry in spec.data:
        dataset, _, only = (entry, "", "") if entry in manifest().datasets else entry.partition("/")
        out += [(dataset, f) for f in ([only] if only else sorted(manifest().dataset(dataset).files))]
    return out


def fetch_data(chapter: str, root: Path | None = None, log=print) -> list[str]:
    """Download (or make, by its recipe) and verify every data file of ``chapter`` that is not on
    this machine.

    Returns the files fetched. Raises :class:`embrepro.data.DataError` before fetching anything when
    a file is neither here, nor downloadable, nor has a recipe (:mod:`embrepro.book.online`)."""
    from embrepro.book.online import is_local, obtain, recipes
    from embrepro.data import DataError, manifest

    missing = [(d, f) for d, f in chapter_files(chapter, root) if not is_local(d, f)]
    offline = [(d, f) for d, f in missing if not manifest().entry(d, f).url and (d, f) not in recipes()]
    if offline:
        lines = [f"  {d}/{f}: {manifest().entry(d, f).note or 'see data/manifest.yml'}" for d, f in offline]
        raise DataError(
            f"{chapter} reads {len(offline)} file(s) that are not on this machine and that the book cannot "
            "download or make:\n" + "\n".join(lines) + "\nPut a copy of those data sets in a folder (one "
            "sub-folder per data set) and set EMBREPRO_DATA to it; the book's Data and licences page says "
            "where each comes from.")
    done = []
    for dataset, filename in missing:
        log(f"fetching {dataset}/{filename}")
        obtain(dataset, filename, log=log)  # checks the sha256; a wrong file is deleted and named
        done.append(f"{dataset}/{filename}")
    return done


def _fill_upstream(chapter: str, shell) -> None:
    """After each cell, give every empty (or missing) ``needs`` parameter its upstream artefact,
    running the upstream chapter with the book's runner at the notebook's profile."""
    spec = discover()[chapter]
    filled: dict[str, str] = {}

    def fill(*_):
        ns = shell.user_ns
        for param, target in spec.needs.items():
            if param not in ns or (ns[param] and Path(str(ns[param])).exists()):
                continue
            if param not in filled:
                from embrepro.book.runner import latest_run

                dep, artefact = target.split("/", 1)
                profile = ns.get("profile", "book")
                subprocess.run([sys.executable, "-m", "embrepro", "run", dep, "--profile", profile], check=True)
                filled[param] = str(latest_run(dep, profile) / artefact)
            ns[param] = filled[param]

    shell.events.register("post_run_cell", fill)


def prepare(chapter: str, log=print) -> None:
    """What the set-up cell does once the package is importable (see the module docstring)."""
    fetched = fetch_data(chapter, log=log)
    if fetched:
        log(f"{len(fetched)} data file(s) downloaded and verified")
    if discover()[chapter].needs:
        try:
            shell = get_ipython()  # noqa: F821 - defined inside IPython
        except NameError:
            return
        _fill_upstream(chapter, shell)


# --- the Sphinx extension -------------------------------------------------------------------

def _retarget(app, pagename, templatename, context, doctree):
    """Point the theme's launch links for ``book/chapters/<name>`` at the source notebook."""
    if not pagename.startswith("book/chapters/"):
        return
    name = pagename.rsplit("/", 1)[-1]
    try:
        target = source_path(name, Path(app.srcdir))
    except KeyError:
        return
    for group in context.get("header_buttons", []):
        if group.get("label") != "launch-buttons":
            continue
        for button in group.get("buttons", []):
            if "url" in button:
                button["url"] = button["url"].replace(f"{pagename}.ipynb", target)


def setup(app):
    app.connect("html-page-context", _retarget, priority=900)  # after the theme's add_launch_buttons (501)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
