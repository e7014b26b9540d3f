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
# Labelled documents: IMDB movie reviews
# --------------------------------------------------------------------------------------------

IMDB_FORMAT = 2  # bump when the IMDB tokenisation or cache format changes: the cached file is rebuilt
_IMDB_MEMBER = re.compile(r"aclImdb/(train|test)/(pos|neg)/(\d+)_(\d+)\.txt$")
_HTML_BREAK = re.compile(r"<br\s*/?>", re.IGNORECASE)
_IMDB_MEMO: dict[str, dict[str, "LabelledDocuments"]] = {}


@dataclass
class LabelledDocuments:
    """Tokenised documents with a binary class label, in a fixed order.

    ``labels`` are 1 (positive) or 0 (negative); ``ratings`` are the reviewers' stars out of 10
    (IMDB: 1-4 negative, 7-10 positive); ``ids`` name the source file, e.g. ``train/pos/0_9``.
    """

    name: str
    split: str
    tokens: list[list[str]]
    labels: list[int]
    ratings: list[int]
    ids: list[str]

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, indices) -> "LabelledDocuments":
        """The documents at ``indices``, in that order."""
        idx = [int(i) for i in indices]
        return LabelledDocuments(self.name, self.split, [self.tokens[i] for i in idx],
                                 [self.labels[i] for i in idx], [self.ratings[i] for i in idx],
                                 [self.ids[i] for i in idx])

    def balanced_sample(self, per_class: int | None, seed: int = 0) -> "LabelledDocuments":
        """``per_class`` documents of each label drawn at random (``None``: all), in the original order."""
        if per_class is None:
            return self
        import numpy as np

        rng = np.random.default_rng(seed)
        labels = np.asarray(self.labels)
        chosen = []
        for label in (1, 0):
            pool = np.flatnonzero(labels == label)
            if per_class > len(pool):
                raise ValueError(f"{self.name} {self.split} has {len(pool)} documents of label {label}, "
                                 f"fewer than the {per_class} asked for")
            chosen.extend(rng.choice(pool, size=per_class, replace=False).tolist())
        return self.subset(sorted(chosen))


def tokenize_review(text: str) -> list[str]:
    """Tokens of one IMDB review: HTML line breaks (``<br />``) removed, then :func:`tokenize`."""
    return tokenize(_HTML_BREAK.sub(" ", text))


def _imdb_token_file() -> Path:
    """Both labelled IMDB splits tokenised, cached as arrays: a vocabulary and word ids per review.

    Rebuilding the token lists from word ids shares one string object per distinct word, which
    keeps the 11.5 million tokens in about 200 MB instead of over 1 GB.
    """
    import numpy as np

    archive = fetch("imdb", "aclImdb_train_test.tar.gz")
    target = cache_dir("derived") / f"imdb-v{IMDB_FORMAT}-{sha256_file(archive)[:12]}.npz"
    if not target.exists():
        rows = []
        with tarfile.open(archive) as tar:
            for member in tar:
                match = _IMDB_MEMBER.search(member.name)
                if not (match and member.isfile()):
                    continue
                split, polarity, number, rating = match.groups()
                text = tar.extractfile(member).read().decode("utf-8", errors="replace")
                rows.append((split == "test", polarity == "pos", int(number), int(rating), tokenize_review(text)))
        # Fixed order: train before test, positives before negatives, then the file number.
        rows.sort(key=lambda r: (r[0], not r[1], r[2]))
        vocabulary: dict[str, int] = {}
        ids = [vocabulary.setdefault(word, len(vocabulary)) for row in rows for word in row[4]]
        tmp = target.with_name(f"{target.stem}.tmp{os.getpid()}.npz")
        np.savez(tmp, vocabulary=np.array("\n".join(vocabulary)), ids=np.array(ids, dtype=np.int32),
                 offsets=np.cumsum([0] + [len(row[4]) for row in rows]),
                 is_test=np.array([r[0] for r in rows]), positive=np.array([r[1] for r in rows]),
                 number=np.array([r[2] for r in rows]), rating=np.array([r[3] for r in rows]))
        os.replace(tmp, target)
    return target


def load_imdb(split: str = "train") -> LabelledDocuments:
    """IMDB movie reviews (Maas et al. 2011), labelled part: 25,000 train and 25,000 test reviews.

    Each split holds 12,500 positive and 12,500 negative reviews, positives first, each group in
    the order of the file numbers. The HTML line breaks (``<br />``) are removed, and the text is
    tokenised like the rest of the book (:func:`tokenize`: lower-case words, punctuation and digits
    dropped). The 50,000 unlabelled reviews of the original release are not in the mirror.
    The result is shared within a process: do not modify it in place (``subset`` makes copies).
    """
    import numpy as np

    if split not in ("train", "test"):
        raise ValueError(f"IMDB split must be train or test, not {split!r}")
    path = _imdb_token_file()
    if path.name not in _IMDB_MEMO:
        parts = {s: LabelledDocuments("IMDB", s, [], [], [], []) for s in ("train", "test")}
        with np.load(path, allow_pickle=False) as arrays:
            words = np.array(str(arrays["vocabulary"]).split("\n"), dtype=object)
            ids, offsets = arrays["ids"], arrays["offsets"]
            fields = zip(arrays["is_test"], arrays["positive"], arrays["number"], arrays["rating"])
            for i, (is_test, positive, number, rating) in enumerate(fields):
                s, polarity = ("test" if is_test else "train"), ("pos" if positive else "neg")
                docs = parts[s]
                docs.tokens.append(words[ids[offsets[i]:offsets[i + 1]]].tolist())
                docs.labels.append(int(positive))
                docs.ratings.append(int(rating))
                docs.ids.append(f"{s}/{polarity}/{number}_{rating}")
        _IMDB_MEMO.clear()
        _IMDB_MEMO[path.name] = parts
    return _IMDB_MEMO[path.name][split]


# --------------------------------------------------------------------------------------------
# Semantic lexicons (retrofitting) and WordNet
# --------------------------------------------------------------------------------------------

RETROFIT_LEXICON_FILES = {"ppdb-xl": "ppdb-xl.txt", "framenet": "framenet.txt"}
WORDNET_DATA_FILES = {"n": "dict/data.noun", "v": "dict/data.verb", "a": "dict/data.adj", "r": "dict/data.adv"}
WORDNET_RELATIONS = {
    "synonyms": (),
    # the paper's "WordNet_all" (the repository's wordnet-synonyms+): synonyms, hypernyms, hyponyms
    "synonyms+": ("@", "@i", "~", "~i"),
}


@dataclass
class Lexicon:
    """A semantic lexicon as word -> neighbours, the format of Faruqui et al.'s lexicon files.

    On disk each line holds a word followed by its neighbours, separated by spaces. Here words are
    lower-cased (as the official ``retrofit.py`` does), a word that heads several lines gets the
    union of their neighbours (the official script keeps only its last line; ``duplicate_heads``
    counts such words) and a word never lists itself (``self_links`` counts the dropped ones).
    """

    name: str
    neighbours: dict[str, list[str]]
    duplicate_heads: int = 0
    self_links: int = 0

    def __len__(self) -> int:
        return len(self.neighbours)

    @property
    def n_edges(self) -> int:
        return sum(len(v) for v in self.neighbours.values())

    def vocabulary(self) -> set[str]:
        """Every word the lexicon mentions, as a head or as a neighbour."""
        words = set(self.neighbours)
        for neighbours in self.neighbours.values():
            words.update(neighbours)
        return words


def lexicon_from_lines(name: str, lines) -> Lexicon:
    """A :class:`Lexicon` from lines of the form ``word neighbour neighbour ...``."""
    merged: dict[str, dict[str, None]] = {}
    seen_heads: set[str] = set()
    duplicates: set[str] = set()
    self_links = 0
    for line in lines:
        words = line.lower().split()
        if not words:
            continue
        head, rest = words[0], words[1:]
        if head in seen_heads:
            duplicates.add(head)
        seen_heads.add(head)
        bucket = merged.setdefault(head, {})
        for word in rest:
            if word == head:
                self_links += 1
            else:
                bucket[word] = None
    return Lexicon(name, {h: list(n) for h, n in merged.items()}, len(duplicates), self_links)


def load_retrofit_lexicon(name: str) -> Lexicon:
    """PPDB-XL or FrameNet as released with the retrofitting code (``ppdb-xl``, ``framenet``).

    PPDB-XL links paraphrases (102,902 lines); FrameNet links words that evoke the same frame
    (10,822 lines). The WordNet lexicons are built from WordNet 3.0 by :func:`load_wordnet_lexicon`.
    """
    if name not in RETROFIT_LEXICON_FILES:
        raise ValueError(f"Unknown retrofitting lexicon {name!r}; known: {', '.join(RETROFIT_LEXICON_FILES)} "
                         "(WordNet: load_wordnet_lexicon)")
    with open(fetch("retrofit_lexicons", RETROFIT_LEXICON_FILES[name]), encoding="utf-8") as fh:
        return lexicon_from_lines(name, fh)


@dataclass(frozen=True)
class Synset:
    """One WordNet 3.0 synset, as stored in ``dict/data.<pos>``.

    ``pos`` is n, v, a or r (satellite adjectives, ``s`` in the file, are filed under a, as the
    pointers address them); ``lemmas`` keep the database's spelling (case, underscores for
    multi-word expressions), without the adjective position markers such as ``(a)``; ``pointers``
    are ``(symbol, target pos, target offset)``, e.g. ``("@", "n", 1740)`` for a hypernym.
    """

    offset: int
    pos: str
    lemmas: tuple[str, ...]
    pointers: tuple[tuple[str, str, int], ...]

    @property
    def key(self) -> tuple[str, int]:
        return (self.pos, self.offset)


_ADJ_MARKER = re.compile(r"\((?:a|p|ip)\)$")


def parse_wordnet_data_line(line: str) -> Synset | None:
    """One line of a WordNet ``data.*`` file as a :class:`Synset` (``None`` for licence lines)."""
    if line.startswith("  ") or not line.strip():
        return None
    fields = line.split(" | ", 1)[0].split()
    offset, ss_type = int(fields[0]), fields[2]
    n_words = int(fields[3], 16)
    lemmas = tuple(_ADJ_MARKER.sub("", w) for w in fields[4:4 + 2 * n_words:2])
    at = 4 + 2 * n_words
    n_pointers = int(fields[at])
    pointers = []
    for k in range(n_pointers):
        symbol, target, target_pos, _ = fields[at + 1 + 4 * k:at + 5 + 4 * k]
        pointers.append((symbol, "a" if target_pos == "s" else target_pos, int(target)))
    return Synset(offset, "a" if ss_type == "s" else ss_type, lemmas, tuple(pointers))


def load_wordnet_synsets(parts_of_speech: str = "nvar") -> dict[tuple[str, int], Synset]:
    """WordNet 3.0 synsets keyed by ``(pos, offset)`` (117,659 for all four parts of speech)."""
    synsets = {}
    for pos in parts_of_speech:
        if pos not in WORDNET_DATA_FILES:
            raise ValueError(f"part of speech must be among n, v, a, r, not {pos!r}")
        with open(fetch("wordnet", WORDNET_DATA_FILES[pos]), encoding="utf-8") as fh:
            for line in fh:
                synset = parse_wordnet_data_line(line)
                if synset is not None:
                    synsets[synset.key] = synset
    return synsets


def load_wordnet_lexicon(relations: str = "synonyms",
                         synsets: dict[tuple[str, int], Synset] | None = None) -> Lexicon:
    """A retrofitting lexicon regenerated from WordNet 3.0 (all parts of speech, lower-cased).

    ``synonyms`` links every two lemmas that share a synset (the repository's
    ``wordnet-synonyms.txt``); ``synonyms+`` also links each lemma to the lemmas of its synsets'
    hypernyms and hyponyms, instance relations included (the paper's WordNet_all, the repository's
    ``wordnet-synonyms+.txt``). Multi-word lemmas keep their underscores. Pass ``synsets`` (from
    :func:`load_wordnet_synsets`) to build several lexicons from one parse.
    """
    if relations not in WORDNET_RELATIONS:
        raise ValueError(f"relations must be one of {', '.join(WORDNET_RELATIONS)}, not {relations!r}")
    followed = set(WORDNET_RELATIONS[relations])
    synsets = synsets if synsets is not None else load_wordnet_synsets()
    neighbours: dict[str, dict[str, None]] = {}
    for synset in synsets.values():
        lemmas = [w.lower() for w in synset.lemmas]
        linked = list(lemmas)
        for symbol, pos, offset in synset.pointers:
            if symbol in followed:
                linked.extend(w.lower() for w in synsets[(pos, offset)].lemmas)
        for word in lemmas:
            bucket = neighbours.setdefault(word, {})
            for other in linked:
                if other != word:
                    bucket[other] = None
    return Lexicon(f"wordnet-{relations}", {w: list(n) for w, n in neighbours.items()})


# --------------------------------------------------------------------------------------------
# Hierarchies: transitive closures of is-a relations (Poincaré embeddings)
# --------------------------------------------------------------------------------------------

@dataclass
class Hierarchy:
    """A transitive closure of "is-a" pairs: node names and (child, ancestor) index pairs.

    ``nodes`` are sorted names (WordNet synsets such as ``dog.n.01``); ``edges`` is an int64 array
    of shape (pairs, 2) whose rows are (child index, ancestor index), one row per pair of the
    closure (``dog.n.01`` -> ``canine.n.02`` and ``dog.n.01`` -> ``mammal.n.01`` are both there).
    """

    name: str
    nodes: list[str]
    edges: "np.ndarray"

    def __len__(self) -> int:
        return len(self.edges)

    @property
    def n_nodes(self) -> int:
        return len(self.nodes)

    def index(self, name: str) -> int:
        if not hasattr(self, "_index"):
            self._index = {n: i for i, n in enumerate(self.nodes)}
        return self._index[name]

    @classmethod
    def from_pairs(cls, name: str, pairs) -> "Hierarchy":
        import numpy as np

        pairs = list(dict.fromkeys((str(c), str(p)) for c, p in pairs))
        nodes = sorted({n for pair in pairs for n in pair})
        at = {n: i for i, n in enumerate(nodes)}
        edges = np.array([(at[c], at[p]) for c, p in pairs], dtype=np.int64).reshape(-1, 2)
        return cls(name, nodes, edges)

    def ancestors(self) -> dict[int, set[int]]:
        """Node index -> the indices of all its ancestors."""
        up: dict[int, set[int]] = {}
        for c, p in self.edges.tolist():
            up.setdefault(c, set()).add(p)
        return up

    def direct_edges(self) -> "np.ndarray":
        """The transitive reduction: (child, parent) pairs with no other ancestor in between."""
        import numpy as np

        up = self.ancestors()
        rows = []
        for child, above in up.items():
            implied = set().union(*(up.get(a, set()) for a in above))
            rows.extend((child, p) for p in sorted(above - implied))
        return np.array(rows, dtype=np.int64).reshape(-1, 2)


def load_mammal_closure() -> Hierarchy:
    """The WordNet mammal closure of Nickel & Kiela (2017): 1,180 synsets, 6,540 pairs.

    Read from ``mammal_closure.csv`` (columns id1 = hyponym, id2 = hypernym, weight = 1), the file
    the official code's ``wordnet/transitive_closure.py`` writes; ``embrepro.wordnet`` regenerates
    the same pairs from WordNet 3.0.
    """
    with open(fetch("poincare", "mammal_closure.csv"), encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    return Hierarchy.from_pairs("WordNet mammals", ((r["id1"], r["id2"]) for r in rows))


NOUN_CLOSURE_FORMAT = 1  # bump when embrepro.wordnet.noun_closure changes: the cached file is rebuilt


def load_noun_closure() -> Hierarchy:
    """The closure of all WordNet 3.0 nouns (82,115 synsets, 743,241 pairs), regenerated from the
    ``wordnet`` data set by :func:`embrepro.wordnet.noun_closure` and cached as a TSV file."""
    from embrepro import wordnet

    key = hashlib.sha256(sha256_file(fetch("wordnet", "dict/data.noun")).encode()
                         + sha256_file(fetch("wordnet", "dict/index.noun")).encode()).hexdigest()[:12]
    target = cache_dir("derived") / f"noun-closure-v{NOUN_CLOSURE_FORMAT}-{key}.tsv"
    if not target.exists():
        _atomic_write_text(target, "".join(f"{c}\t{p}\n" for c, p in wordnet.noun_closure()))
    with open(target, encoding="utf-8") as fh:
        return Hierarchy.from_pairs("WordNet nouns", (line.rstrip("\n").split("\t") for line in fh))


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


@dataclass
class GutenbergSentences:
    """Sentences sampled from the Gutenberg corpus, with where each one comes from.

    ``texts[i]`` is a tokenised sentence (lower case, words joined by spaces); ``book[i]`` and
    ``author[i]`` index ``books`` and ``authors``; ``position[i]`` is the sentence's place in its
    book, from 0 (first sentence) to 1 (last).
    """

    texts: list[str]
    book: "np.ndarray"
    author: "np.ndarray"
    position: "np.ndarray"
    books: list[str]
    authors: list[str]

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, indices) -> "GutenbergSentences":
        idx = [int(i) for i in indices]
        return GutenbergSentences([self.texts[i] for i in idx], self.book[idx], self.author[idx],
                                  self.position[idx], self.books, self.authors)


def gutenberg_sentences(n: int, seed: int = 0, min_tokens: int = 6, max_tokens: int = 40) -> GutenbergSentences:
    """``n`` sentences drawn uniformly (without replacement) from the whole Gutenberg corpus.

    Only sentences of ``min_tokens`` to ``max_tokens`` tokens are eligible (very short lines are
    mostly headings, very long ones are slow to encode). The author of a book is the folder name
    of its tar member (``gutenberg/<author>/<title>.txt``). The same arguments give the same
    sentences, in corpus order.
    """
    import numpy as np

    path, index = _full_gutenberg_corpus()
    lengths = np.empty(sum(b["sentences"] for b in index), dtype=np.int32)
    with open(path, encoding="utf-8") as fh:
        for i, line in enumerate(fh):
            lengths[i] = line.count(" ") + 1
    eligible = np.flatnonzero((lengths >= min_tokens) & (lengths <= max_tokens))
    if n > len(eligible):
        raise ValueError(f"asked for {n:,} sentences, only {len(eligible):,} have {min_tokens}-{max_tokens} tokens")
    chosen = np.sort(np.random.default_rng(seed).choice(eligible, size=n, replace=False))
    book_of_line = np.repeat(np.arange(len(index)), [b["sentences"] for b in index])
    first_line = np.concatenate([[0], np.cumsum([b["sentences"] for b in index])[:-1]])
    books = [b["book"] for b in index]
    author_names = [b.split("/")[-2] if b.count("/") >= 2 else b for b in books]
    authors = sorted(set(author_names))
    author_of_book = np.array([authors.index(a) for a in author_names])
    wanted, texts = set(chosen.tolist()), []
    with open(path, encoding="utf-8") as fh:
        for i, line in enumerate(fh):
            if i in wanted:
                texts.append(line.rstrip("\n"))
    book = book_of_line[chosen]
    sizes = np.array([b["sentences"] for b in index])
    position = (chosen - first_line[book]) / np.maximum(sizes[book] - 1, 1)
    return GutenbergSentences(texts, book, author_of_book[book], position.astype(np.float64), books, authors)
