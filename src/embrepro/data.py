"""Data sets: the manifest, finding and verifying files, and typed loaders.

Every file the book reads is listed in ``data/manifest.yml`` with its sha256, size, licence,
citation and (where one exists) a public download URL. :func:`fetch` finds a file in this order:

1. a local mirror named by ``EMBREPRO_DATA``;
2. ``../shared/data`` beside the project, where it exists;
3. the download cache (``.cache/data``), filled from the file's URL on first use.

A file is always checked against its sha256 before use. A mirror file with the wrong hash is
refused (it is not silently replaced by a download), and a file that cannot be found or fetched
stops with a message that names it, its expected hash and what to do.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import tarfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from embrepro.paths import cache_dir, mirror_dirs, project_root


class DataError(RuntimeError):
    """A data file is missing, cannot be downloaded, or does not match its sha256."""


@dataclass(frozen=True)
class FileEntry:
    dataset: str
    name: str
    sha256: str
    size: int
    url: str | None = None
    note: str | None = None


@dataclass
class Dataset:
    name: str
    title: str
    description: str
    licence: str
    citation: str
    source: str
    files: dict[str, FileEntry] = field(default_factory=dict)

    def fingerprint(self) -> str:
        """One hash over the sha256 of every file: changes when any file changes."""
        joined = "\n".join(f"{k} {f.sha256}" for k, f in sorted(self.files.items()))
        return hashlib.sha256(joined.encode()).hexdigest()


class Manifest:
    """The data sets the book knows about (``data/manifest.yml``)."""

    def __init__(self, datasets: dict[str, Dataset]):
        self.datasets = datasets

    @classmethod
    def from_dict(cls, raw: dict) -> "Manifest":
        datasets = {}
        for name, spec in raw["datasets"].items():
            files = {
                fname: FileEntry(
                    dataset=name,
                    name=fname,
                    sha256=f["sha256"],
                    size=int(f["size"]),
                    url=f.get("url"),
                    note=f.get("note"),
                )
                for fname, f in spec["files"].items()
            }
            datasets[name] = Dataset(
                name=name,
                title=spec.get("title", name),
                description=spec.get("description", ""),
                licence=spec.get("licence", ""),
                citation=spec.get("citation", ""),
                source=spec.get("source", ""),
                files=files,
            )
        return cls(datasets)

    @classmethod
    def load(cls, path: Path | None = None) -> "Manifest":
        path = path or project_root() / "data" / "manifest.yml"
        with open(path, encoding="utf-8") as fh:
            return cls.from_dict(yaml.safe_load(fh))

    def dataset(self, name: str) -> Dataset:
        if name not in self.datasets:
            known = ", ".join(sorted(self.datasets))
            raise DataError(f"Unknown data set {name!r}. The manifest lists: {known}.")
        return self.datasets[name]

    def entry(self, dataset: str, filename: str) -> FileEntry:
        ds = self.dataset(dataset)
        if filename not in ds.files:
            raise DataError(
                f"{dataset!r} has no file {filename!r} in the manifest. "
                f"Its files: {', '.join(sorted(ds.files)[:20])}"
            )
        return ds.files[filename]


_MANIFEST: Manifest | None = None
_VERIFIED: dict[tuple[str, int, int], str] = {}


def manifest() -> Manifest:
    """The project's manifest, read once per process."""
    global _MANIFEST
    if _MANIFEST is None:
        _MANIFEST = Manifest.load()
    return _MANIFEST


def sha256_file(path: Path) -> str:
    """The sha256 of a file, remembered for this process while its size and mtime stay put."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _VERIFIED:
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        _VERIFIED[key] = digest.hexdigest()
    return _VERIFIED[key]


def _check(path: Path, entry: FileEntry, where: str) -> Path:
    actual = sha256_file(path)
    if actual != entry.sha256:
        raise DataError(
            f"Checksum mismatch for {entry.dataset}/{entry.name} in {where} ({path}).\n"
            f"  expected sha256 {entry.sha256}\n"
            f"  found    sha256 {actual}\n"
            "The file is corrupt or a different version. Restore it from the original source "
            "(see data/manifest.yml), or delete it so that it is downloaded again."
        )
    return path


def _download(entry: FileEntry, target: Path) -> None:
    from tqdm.auto import tqdm

    tmp = target.with_name(target.name + f".part{os.getpid()}")
    try:
        with urllib.request.urlopen(entry.url, timeout=60) as response, open(tmp, "wb") as out:
            with tqdm(total=entry.size, unit="B", unit_scale=True, desc=f"download {entry.name}",
                      disable=entry.size < 5_000_000) as bar:
                for block in iter(lambda: response.read(1 << 20), b""):
                    out.write(block)
                    bar.update(len(block))
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        tmp.unlink(missing_ok=True)
        raise DataError(
            f"Could not download {entry.dataset}/{entry.name} from {entry.url}: {exc}.\n"
            "If you are offline, point EMBREPRO_DATA at a folder holding the data sets "
            "(one sub-folder per data set, as in data/manifest.yml)."
        ) from exc
    actual = sha256_file(tmp)
    if actual != entry.sha256:
        tmp.unlink(missing_ok=True)
        raise DataError(
            f"The download of {entry.dataset}/{entry.name} from {entry.url} does not match the manifest.\n"
            f"  expected sha256 {entry.sha256}\n  found    sha256 {actual}\n"
            "The upstream file may have changed; nothing was kept."
        )
    os.replace(tmp, target)


def fetch(dataset: str, filename: str, *, manifest_: Manifest | None = None) -> Path:
    """The verified local path of one file of a data set (downloading it if needed)."""
    entry = (manifest_ or manifest()).entry(dataset, filename)
    for mirror in mirror_dirs():
        candidate = mirror / dataset / filename
        if candidate.is_file():
            return _check(candidate, entry, f"the mirror {mirror}")
    cached = cache_dir("data", dataset) / filename
    if cached.is_file():
        return _check(cached, entry, "the download cache")
    if not entry.url:
        searched = ", ".join(str(m) for m in mirror_dirs()) or "(no mirror found)"
        raise DataError(
            f"{dataset}/{filename} (sha256 {entry.sha256}) is not in any local mirror "
            f"[{searched}] and has no public download URL.\n"
            f"  how it was made: {entry.note or 'see data/manifest.yml'}\n"
            "Set EMBREPRO_DATA to a folder that holds it."
        )
    cached.parent.mkdir(parents=True, exist_ok=True)
    _download(entry, cached)
    return cached


def dataset_fingerprints(names: list[str]) -> dict[str, str]:
    """Fingerprints of the named data sets (for cache keys), without reading any file."""
    return {name: manifest().dataset(name).fingerprint() for name in sorted(names)}


def describe(names: list[str]):
    """A table of data sets for a chapter's Data section: title, size, licence, citation."""
    import pandas as pd

    rows = []
    for name in names:
        ds = manifest().dataset(name)
        rows.append({"data set": ds.title, "files": len(ds.files),
                     "MB": round(sum(f.size for f in ds.files.values()) / 1e6, 1),
                     "licence": ds.licence, "cite": ds.citation})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------
# Typed loaders
# --------------------------------------------------------------------------------------------

@dataclass
class SentencePairs:
    """Sentence pairs with a gold similarity score (STS-B, SICK-R)."""

    name: str
    split: str
    sentences1: list[str]
    sentences2: list[str]
    scores: list[float]

    def __len__(self) -> int:
        return len(self.scores)

    def head(self, n: int) -> "SentencePairs":
        return SentencePairs(self.name, self.split, self.sentences1[:n], self.sentences2[:n], self.scores[:n])


def load_stsb(split: str = "test") -> SentencePairs:
    """STS Benchmark (Cer et al. 2017): scores 0-5. Splits: train 5,749, dev 1,500, test 1,379."""
    if split not in ("train", "dev", "test"):
        raise ValueError(f"STS-B split must be train, dev or test, not {split!r}")
    path = fetch("stsb", f"sts-{split}.csv")
    s1, s2, scores = [], [], []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            cols = line.rstrip("\n").split("\t")
            scores.append(float(cols[4]))
            s1.append(cols[5])
            s2.append(cols[6])
    return SentencePairs("STS-B", split, s1, s2, scores)


SICK_SEMEVAL_FILES = {"train": "SICK_train.txt", "trial": "SICK_trial.txt", "test": "SICK_test_annotated.txt"}


def load_sick(split: str = "all") -> SentencePairs:
    """SICK relatedness (Marelli et al. 2014), scores 1-5, from the SemEval-2014 Task 1 release.

    Splits: ``train`` 4,500, ``trial`` 500, ``test`` 4,927 pairs, or ``all`` 9,927 pairs; ``all`` is
    what MTEB's SICK-R evaluates (and what its published scores refer to). ``full`` is the
    9,840-pair SICK release (SICK.txt), for comparison.
    """
    if split not in (*SICK_SEMEVAL_FILES, "all", "full"):
        raise ValueError(f"SICK split must be one of train, trial, test, all, full, not {split!r}")
    if split == "full":  # the 9,840-pair SICK release, not the SemEval split
        names = ["SICK.txt"]
    else:
        names = list(SICK_SEMEVAL_FILES.values()) if split == "all" else [SICK_SEMEVAL_FILES[split]]
    s1, s2, scores = [], [], []
    for name in names:
        with open(fetch("sick", name), encoding="utf-8") as fh:
            for row in csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE):
                s1.append(row["sentence_A"])
                s2.append(row["sentence_B"])
                scores.append(float(row["relatedness_score"]))
    return SentencePairs("SICK-R", split, s1, s2, scores)


WORD_SIMILARITY_FILES = {
    "ws353": "EN-WS-353-ALL.txt",
    "ws353_sim": "EN-WS-353-SIM.txt",
    "ws353_rel": "EN-WS-353-REL.txt",
    "simlex999": "EN-SIMLEX-999.txt",
    "men": "EN-MEN-TR-3k.txt",
    "rw": "EN-RW-STANFORD.txt",
    "mc30": "EN-MC-30.txt",
    "rg65": "EN-RG-65.txt",
    "mturk287": "EN-MTurk-287.txt",
    "mturk771": "EN-MTurk-771.txt",
    "simverb3500": "EN-SimVerb-3500.txt",
    "yp130": "EN-YP-130.txt",
    "verb143": "EN-VERB-143.txt",
}


@dataclass
class WordPairs:
    """Word pairs with a human similarity score (WS-353, SimLex-999, MEN, RW, ...)."""

    name: str
    pairs: list[tuple[str, str]]
    scores: list[float]

    def __len__(self) -> int:
        return len(self.scores)


def load_word_similarity(name: str) -> WordPairs:
    """One word-similarity set by short name (see ``WORD_SIMILARITY_FILES``), lower-cased."""
    if name not in WORD_SIMILARITY_FILES:
        raise ValueError(f"Unknown word-similarity set {name!r}; known: {', '.join(WORD_SIMILARITY_FILES)}")
    path = fetch("wordsim", WORD_SIMILARITY_FILES[name])
    pairs, scores = [], []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            cols = line.split()
            if len(cols) >= 3:
                pairs.append((cols[0].lower(), cols[1].lower()))
                scores.append(float(cols[2]))
    return WordPairs(name, pairs, scores)


def analogy_file(name: str = "google") -> Path:
    """Path of an analogy question file in word2vec's format (``: section`` lines, then ``a b c d``).

    ``google`` is questions-words.txt (19,544 questions: 5 semantic, 9 syntactic sections);
    ``msr`` is the MSR syntactic set (8,000), converted once into the same format in the cache.
    """
    if name == "google":
        return fetch("analogy", "questions-words.txt")
    if name == "msr":
        source = fetch("analogy", "msr.csv")
        target = cache_dir("derived") / f"msr-analogies-{sha256_file(source)[:12]}.txt"
        if not target.exists():
            by_type: dict[str, list[str]] = {}
            with open(source, encoding="utf-8") as fh:
                for row in csv.DictReader(fh):
                    by_type.setdefault(f"gram-msr-{row['type']}", []).append(
                        " ".join(row[k] for k in ("word1", "word2", "word3", "target")))
            text = "".join(f": {t}\n" + "\n".join(rows) + "\n" for t, rows in sorted(by_type.items()))
            _atomic_write_text(target, text)
        return target
    raise ValueError(f"Unknown analogy set {name!r}; known: google, msr")


# --------------------------------------------------------------------------------------------
# The Gutenberg corpus
# --------------------------------------------------------------------------------------------

_WORD = re.compile(r"[a-z]+(?:'[a-z]+)?")
_SENTENCE_END = re.compile(r"(?<=[.!?;:])\s+|\n\s*\n")
CORPUS_FORMAT = 2  # bump when the tokenisation below changes: cached corpus files are rebuilt


_PG_START = re.compile(r"^\*\*\*\s*START OF (?:THE|THIS) PROJECT GUTENBERG[^\n]*$"
                       r"|^\*END\*?\s*THE SMALL PRINT[^\n]*$", re.IGNORECASE | re.MULTILINE)
_PG_END = re.compile(r"^\*\*\*\s*END OF (?:THE|THIS) PROJECT GUTENBERG"
                     r"|^\s*End of (?:the |this )?Project Gutenberg", re.IGNORECASE | re.MULTILINE)


def strip_gutenberg_boilerplate(text: str) -> str:
    """Drop the Project Gutenberg licence header and footer around the book's own text.

    Handles the modern markers (``*** START OF THE PROJECT GUTENBERG EBOOK ...``, with or without
    the space after the asterisks) and the 1990s ones (``*END*THE SMALL PRINT! ...`` and
    ``End of the Project Gutenberg Etext``).
    """
    start = _PG_START.search(text)
    if start:
        text = text[start.end():]
    end = _PG_END.search(text)
    if end:
        text = text[:end.start()]
    return text


def tokenize(text: str) -> list[str]:
    """Lower-cased word tokens, the same way the Gutenberg corpus is tokenised."""
    return _WORD.findall(text.lower())


def tokenize_sentences(text: str) -> Iterator[list[str]]:
    """Lower-cased word tokens, one list per sentence (split at . ! ? ; : and blank lines)."""
    for sentence in _SENTENCE_END.split(text.lower()):
        tokens = _WORD.findall(sentence)
        if len(tokens) > 1:
            yield tokens


def _gutenberg_books() -> Iterator[tuple[str, str]]:
    """(book path, raw text) for each book, from the tarball or, failing that, book by book."""
    try:
        archive = fetch("corpus_gutenberg", "gutenberg_en_100MB.tar.gz")
    except DataError as missing_tarball:
        books = manifest().dataset("corpus_gutenberg_books").files
        if not books:
            raise missing_tarball
        for name in sorted(books):
            yield name, fetch("corpus_gutenberg_books", name).read_text(encoding="utf-8", errors="replace")
        return
    with tarfile.open(archive) as tar:
        members = sorted((m for m in tar if m.isfile()), key=lambda m: m.name)
        for member in members:
            yield member.name, tar.extractfile(member).read().decode("utf-8", errors="replace")


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _full_gutenberg_corpus() -> tuple[Path, list[dict]]:
    """The whole corpus tokenised, one sentence a line, cached; plus a per-book index."""
    folder = cache_dir("derived")
    text_path = folder / f"gutenberg-v{CORPUS_FORMAT}.txt"
    index_path = folder / f"gutenberg-v{CORPUS_FORMAT}.json"
    if not (text_path.exists() and index_path.exists()):
        index = []
        buffer = io.StringIO()
        for name, raw in _gutenberg_books():
            n_lines = n_tokens = 0
            for tokens in tokenize_sentences(strip_gutenberg_boilerplate(raw)):
                buffer.write(" ".join(tokens))
                buffer.write("\n")
                n_lines += 1
                n_tokens += len(tokens)
            index.append({"book": name, "sentences": n_lines, "tokens": n_tokens})
        _atomic_write_text(text_path, buffer.getvalue())
        _atomic_write_text(index_path, json.dumps(index, indent=1))
    return text_path, json.loads(index_path.read_text())


@dataclass
class CorpusFile:
    """A tokenised corpus on disk in gensim's ``corpus_file`` format (one sentence a line)."""

    path: Path
    tokens: int
    sentences: int
    books: int

    def sentences_iter(self) -> Iterator[list[str]]:
        with open(self.path, encoding="utf-8") as fh:
            for line in fh:
                yield line.split()


def gutenberg_corpus(max_tokens: int | None = None) -> CorpusFile:
    """The Gutenberg corpus (258 books, ~16.5M tokens), optionally cut to about ``max_tokens``.

    A cut keeps the same fraction of every book (its opening sentences), so that a small corpus
    still spans all 95 authors instead of the first few alphabetically.
    """
    full_path, index = _full_gutenberg_corpus()
    total = sum(book["tokens"] for book in index)
    if max_tokens is None or max_tokens >= total:
        return CorpusFile(full_path, total, sum(b["sentences"] for b in index), len(index))
    if max_tokens <= 0:
        raise ValueError(f"max_tokens must be positive, not {max_tokens}")
    target = cache_dir("derived") / f"gutenberg-v{CORPUS_FORMAT}-{max_tokens}.txt"
    fraction = max_tokens / total
    kept_tokens = kept_sentences = 0
    out = io.StringIO()
    with open(full_path, encoding="utf-8") as fh:
        for book in index:
            quota = fraction * book["tokens"]
            used = 0
            for _ in range(book["sentences"]):
                line = fh.readline()
                n = line.count(" ") + 1
                if used < quota:
                    out.write(line)
                    used += n
                    kept_sentences += 1
            kept_tokens += used
    if not target.exists():
        _atomic_write_text(target, out.getvalue())
    return CorpusFile(target, kept_tokens, kept_sentences, len(index))
