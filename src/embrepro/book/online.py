"""Data files with no download URL of their own, made again online from public sources.

Some files of ``data/manifest.yml`` were extracted or derived for the offline mirror (``url: null``).
A reader on Colab or Binder has no mirror, so each such file carries a ``recipe`` (written by
``tools/build_manifest.py``) that makes it again, byte for byte, from public sources:

- ``member``: a member of another file of the same data set (a zip or tar archive);
- ``deb``: a member of a Debian package, downloaded from the archive (its sha256 checked), optionally
  a byte range of it;
- ``derive``: made by a named function below from other files of the manifest;
- ``git_archive``: ``git archive <commit> <paths> | gzip -n`` of a public git repository
  (:mod:`embrepro.book.git_online`).

:func:`obtain` returns a verified local path for any file of the manifest: the mirror or download cache
when the file is there, else its URL, else its recipe. Whatever a recipe writes is checked against the
manifest's sha256 and size before it is put into the download cache, so a recipe that no longer gives
the same bytes stops with an error that names the file; nothing unverified is kept.

This module is the book wing's: chapters never import it, so changing it does not change any run key.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import shutil
import tarfile
import zipfile
from functools import lru_cache
from pathlib import Path
from typing import Callable

import yaml

from embrepro.derived import DataError, sha256_file
from embrepro.paths import cache_dir, mirror_dirs, project_root

Log = Callable[[str], None]


@lru_cache(maxsize=None)
def _recipes(path: str) -> dict[tuple[str, str], dict]:
    with open(path, encoding="utf-8") as fh:
        raw = yaml.safe_load(fh)["datasets"]
    return {(name, fname): entry["recipe"] for name, spec in raw.items()
            for fname, entry in spec["files"].items() if entry.get("recipe")}


def recipes(path: Path | None = None) -> dict[tuple[str, str], dict]:
    """(data set, file) -> recipe, for every file of the manifest that has one (none without a manifest)."""
    path = path or project_root() / "data" / "manifest.yml"
    return _recipes(str(path)) if path.is_file() else {}


def is_local(dataset: str, filename: str) -> bool:
    """Whether the file is in a local mirror or the download cache (not checked here)."""
    return any((m / dataset / filename).is_file() for m in mirror_dirs()) or \
        (cache_dir("data", dataset) / filename).is_file()


def download(url: str, dest: Path) -> None:
    """Download ``url`` to ``dest`` (:func:`embrepro.data.manifest.download_file`)."""
    from embrepro.data.manifest import download_file

    download_file(url, dest)


def obtain(dataset: str, filename: str, *, log: Log = print) -> Path:
    """The verified local path of a file of the manifest: from the mirror, the download cache, its
    URL, or its recipe (whose output must match the manifest's sha256 and size)."""
    from embrepro.data import fetch, manifest

    entry = manifest().entry(dataset, filename)
    if is_local(dataset, filename):
        return fetch(dataset, filename)  # checks the sha256
    target = cache_dir("data", dataset) / filename
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + f".make{os.getpid()}")
    if entry.url:
        try:
            download(entry.url, tmp)
            _verify(tmp, entry, f"The download of {dataset}/{filename} from {entry.url}")
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
        return target
    recipe = recipes().get((dataset, filename))
    if recipe is None:
        raise DataError(
            f"{dataset}/{filename} has no download URL and no recipe to make it online.\n"
            f"  how it was made: {entry.note or 'see data/manifest.yml'}\n"
            "Set EMBREPRO_DATA to a folder that holds it (one sub-folder per data set).")
    builder = BUILDERS.get(recipe.get("kind"))
    if builder is None:
        raise DataError(f"{dataset}/{filename}: unknown recipe kind {recipe.get('kind')!r} in "
                        f"data/manifest.yml (known: {', '.join(sorted(BUILDERS))}).")
    log(f"making {dataset}/{filename} ({recipe['kind']}"
        + (f" {recipe['function']}" if recipe.get("function") else "") + ")")
    try:
        try:
            builder(recipe, tmp, fetch=lambda d, f: obtain(d, f, log=log), download=download, log=log,
                    dataset=dataset)
        except DataError as exc:
            raise DataError(f"Could not make {dataset}/{filename}: {exc}") from exc
        _verify(tmp, entry, f"The file that the recipe {recipe} made for {dataset}/{filename}")
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def _verify(path: Path, entry, what: str) -> None:
    size, actual = path.stat().st_size, sha256_file(path)
    if (actual, size) != (entry.sha256, entry.size):
        raise DataError(
            f"{what} does not match the manifest.\n"
            f"  expected sha256 {entry.sha256} ({entry.size} bytes)\n"
            f"  found    sha256 {actual} ({size} bytes)\n"
            "The upstream source may have changed; nothing was kept. Please report it.")


# --- the kinds of recipe ----------------------------------------------------------------------

def build_member(recipe: dict, out: Path, *, fetch, download, log, dataset: str) -> None:
    """A member of another file of the same data set: a zip, or a tar (plain or compressed)."""
    archive = fetch(dataset, recipe["archive"])
    name = recipe["member"]
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf, zf.open(name) as src, open(out, "wb") as dst:
                shutil.copyfileobj(src, dst)
        else:
            with tarfile.open(archive) as tar:
                src = tar.extractfile(name)
                if src is None:
                    raise KeyError(name)
                with src, open(out, "wb") as dst:
                    shutil.copyfileobj(src, dst)
    except KeyError:
        raise DataError(f"{dataset}/{recipe['archive']} has no member {name!r}.") from None


def _ar_members(path: Path) -> dict[str, tuple[int, int]]:
    """name -> (offset, size) of the members of an ``ar`` archive (the format of a .deb)."""
    members = {}
    with open(path, "rb") as fh:
        if fh.read(8) != b"!<arch>\n":
            raise DataError(f"{path} is not a Debian package (no ar header).")
        while header := fh.read(60):
            name = header[:16].decode().strip().rstrip("/")
            size = int(header[48:58].decode().strip())
            members[name] = (fh.tell(), size)
            fh.seek(size + (size % 2), 1)
    return members


def _debian_package(recipe: dict, download: Callable[[str, Path], None], log: Log) -> Path:
    """The package, downloaded once into the download cache and checked against its sha256."""
    folder = cache_dir("data", "_packages")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{recipe['sha256']}.deb"
    if path.is_file() and sha256_file(path) == recipe["sha256"]:
        return path
    errors = []
    for url in recipe["urls"]:
        try:
            log(f"downloading {url}")
            download(url, path)
        except DataError as exc:
            errors.append(str(exc))
            continue
        if sha256_file(path) == recipe["sha256"]:
            return path
        errors.append(f"{url}: sha256 {sha256_file(path)}, expected {recipe['sha256']}")
        path.unlink()
    raise DataError("Could not get the Debian package for this file:\n  " + "\n  ".join(errors))


def build_deb(recipe: dict, out: Path, *, fetch, download, log, dataset: str) -> None:
    """A member of a Debian package's data archive, or a byte range of it (``slice: [start, end]``)."""
    package = _debian_package(recipe, download, log)
    members = _ar_members(package)
    data_name = next((n for n in members if n.startswith("data.tar")), None)
    if data_name is None:
        raise DataError(f"{package} holds no data.tar member.")
    offset, size = members[data_name]
    with open(package, "rb") as fh:
        fh.seek(offset)
        blob = fh.read(size)
    with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
        try:
            src = tar.extractfile(recipe["member"])
        except KeyError:
            src = None
        if src is None:
            raise DataError(f"The Debian package {recipe['urls'][0]} has no file {recipe['member']!r}.")
        data = src.read()
    if "slice" in recipe:
        start, end = recipe["slice"]
        data = data[start:end]
    out.write_bytes(data)


def build_git_archive(recipe: dict, out: Path, *, fetch, download, log, dataset: str) -> None:
    from embrepro.book.git_online import build_git_archive as build

    build(recipe, out, fetch=fetch, download=download, log=log)


def build_derived(recipe: dict, out: Path, *, fetch, download, log, dataset: str) -> None:
    function = DERIVATIONS.get(recipe.get("function"))
    if function is None:
        raise DataError(f"Unknown derivation {recipe.get('function')!r} (known: {', '.join(sorted(DERIVATIONS))}).")
    function(recipe, out, fetch=fetch, download=download, log=log)


# --- derivations ------------------------------------------------------------------------------

def _python_strings(text: str) -> list[str]:
    """The string literals of a printed list of strings (as pandas exported numpy arrays:
    ``['one' 'two']``, items separated by white space instead of commas)."""
    import ast
    import tokenize

    tokens = tokenize.generate_tokens(io.StringIO(text).readline)
    return [ast.literal_eval(t.string) for t in tokens if t.type == tokenize.STRING]


def _write_lines(out: Path, lines) -> None:
    with open(out, "w", encoding="utf-8", newline="\n") as fh:
        for line in lines:
            fh.write(line + "\n")


def scifact_corpus(recipe: dict, out: Path, *, fetch, download, log) -> None:
    """BEIR's corpus.jsonl layout from the CSV export: one JSON object per abstract, in the CSV's order,
    with its sentences stripped and joined by one space."""
    csv.field_size_limit(1 << 30)
    with open(fetch("beir/scifact", "raw_csv/corpus_train.csv"), encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    _write_lines(out, (json.dumps({"_id": r["doc_id"], "title": r["title"],
                                   "text": " ".join(s.strip() for s in _python_strings(r["abstract"]))},
                                  ensure_ascii=False) for r in rows))


def scifact_queries(recipe: dict, out: Path, *, fetch, download, log) -> None:
    """BEIR's queries.jsonl layout from Anserini's topics file (id TAB text)."""
    path = fetch("beir/anserini_topics_qrels", "topics.beir-v1.0.0-scifact.test.tsv.gz")
    with gzip.open(path, "rt", encoding="utf-8", newline="") as fh:
        rows = [line.rstrip("\n").split("\t", 1) for line in fh if line.strip()]
    _write_lines(out, (json.dumps({"_id": qid, "text": text}, ensure_ascii=False) for qid, text in rows))


def scifact_qrels(recipe: dict, out: Path, *, fetch, download, log) -> None:
    """BEIR's qrels/test.tsv layout from Anserini's TREC qrels (query 0 document score)."""
    path = fetch("beir/anserini_topics_qrels", "qrels.beir-v1.0.0-scifact.test.txt")
    rows = [line.split() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    _write_lines(out, ["query-id\tcorpus-id\tscore"] + [f"{q}\t{d}\t{s}" for q, _, d, s in rows])


# The syntactic category that lexnames(5WN) gives each lexicographer file's prefix.
LEXNAME_CATEGORY = {"noun": 1, "verb": 2, "adj": 3, "adv": 4}


def wordnet_lexnames(recipe: dict, out: Path, *, fetch, download, log) -> None:
    """``dict/lexnames`` (number TAB name TAB category), from the table in the lexnames(5WN) man page."""
    with gzip.open(fetch("wordnet", "doc/lexnames.5WN.gz"), "rt", encoding="utf-8") as fh:
        page = fh.read().splitlines()
    rows = []
    for line in page:
        parts = line.split("\t")
        if len(parts) >= 2 and len(parts[0]) == 2 and parts[0].isdigit():
            rows.append((parts[0], parts[1].strip()))  # the page has "noun.person  "
    if [int(n) for n, _ in rows] != list(range(45)):
        raise DataError(f"The lexnames(5WN) page does not list the 45 lexicographer files 00-44 (found {len(rows)}).")
    _write_lines(out, (f"{n}\t{name}\t{LEXNAME_CATEGORY[name.split('.')[0]]}" for n, name in rows))


def _gutenberg(function: str):
    def build(recipe: dict, out: Path, *, fetch, download, log) -> None:
        from embrepro.book import gutenberg_online

        getattr(gutenberg_online, function)(recipe, out, fetch=fetch, download=download, log=log)
    return build


DERIVATIONS = {
    "scifact_corpus": scifact_corpus,
    "scifact_queries": scifact_queries,
    "scifact_qrels": scifact_qrels,
    "wordnet_lexnames": wordnet_lexnames,
    "gutenberg_tarball": _gutenberg("build_gutenberg_tarball"),
    "gutenberg_manifest": _gutenberg("build_gutenberg_manifest_tsv"),
}

BUILDERS = {"member": build_member, "deb": build_deb, "derive": build_derived,
            "git_archive": build_git_archive}


__all__ = ["BUILDERS", "DERIVATIONS", "download", "is_local", "obtain", "recipes"]

