"""Corpora: the Gutenberg corpus and the IMDB reviews, with the book's one tokeniser.

* Tokens are lower-cased words (``[a-z]+`` with an inner apostrophe: ``don't``); punctuation and
  digits are dropped (:func:`tokenize`). Sentences end at ``. ! ? ; :`` and at blank lines
  (:func:`tokenize_sentences`); one-word sentences are dropped.
* The Gutenberg corpus (258 English books, ~16.5M tokens) is tokenised once into a derived file in
  gensim's ``corpus_file`` format (one sentence a line, tokens separated by single spaces); its
  record (:mod:`embrepro.derived`) carries the per-book index ``{"books": [{"book", "sentences",
  "tokens"}, ...]}`` in corpus order. Cuts of it (:func:`gutenberg_corpus` with ``max_tokens``) are
  derived files too, keyed by the full corpus's sha256 and the cut's size.
* IMDB (Maas et al. 2011): both labelled splits tokenised once into a derived ``.npz`` file (a
  vocabulary, word ids per review, labels, ratings, file numbers).

A damaged derived file (a cut corpus, a truncated ``.npz``) is found on read and rebuilt.
"""

from __future__ import annotations

import re
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from embrepro import derived
from embrepro.data.manifest import DataError, fetch, manifest, sha256_file
from embrepro.paths import cache_dir

__all__ = ["CORPUS_FORMAT", "CorpusFile", "GutenbergSentences", "IMDB_FORMAT", "LabelledDocuments", "gutenberg_corpus",
           "gutenberg_sentences", "load_imdb", "strip_gutenberg_boilerplate", "tokenize", "tokenize_review",
           "tokenize_sentences"]

# --------------------------------------------------------------------------------------------
# Tokenisation and the Gutenberg corpus
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


def _full_gutenberg_corpus() -> derived.DerivedFile:
    """The whole corpus tokenised, one sentence a line, as a derived file whose record's ``info``
    holds the per-book index (``{"books": [{"book", "sentences", "tokens"}, ...]}``)."""
    key = derived.inputs_key("gutenberg corpus", CORPUS_FORMAT,
                             manifest().dataset("corpus_gutenberg").fingerprint(),
                             manifest().dataset("corpus_gutenberg_books").fingerprint())

    def build(tmp: Path) -> dict:
        index = []
        with open(tmp, "w", encoding="utf-8") as out:
            for name, raw in _gutenberg_books():
                n_lines = n_tokens = 0
                for tokens in tokenize_sentences(strip_gutenberg_boilerplate(raw)):
                    out.write(" ".join(tokens))
                    out.write("\n")
                    n_lines += 1
                    n_tokens += len(tokens)
                index.append({"book": name, "sentences": n_lines, "tokens": n_tokens})
        return {"books": index}

    return derived.ensure(cache_dir("derived") / f"gutenberg-v{CORPUS_FORMAT}.txt", key, build)


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
    still spans all 95 authors instead of the first few alphabetically. Each book's share is
    rounded up to a whole sentence.
    """
    full = _full_gutenberg_corpus()
    index = full.info["books"]
    total = sum(book["tokens"] for book in index)
    if max_tokens is None or max_tokens >= total:
        return CorpusFile(full.path, total, sum(b["sentences"] for b in index), len(index))
    if max_tokens <= 0:
        raise ValueError(f"max_tokens must be positive, not {max_tokens}")

    def build(tmp: Path) -> dict:
        fraction = max_tokens / total
        kept_tokens = kept_sentences = 0
        with open(full.path, encoding="utf-8") as fh, open(tmp, "w", encoding="utf-8") as out:
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
        return {"tokens": kept_tokens, "sentences": kept_sentences}

    target = cache_dir("derived") / f"gutenberg-v{CORPUS_FORMAT}-{max_tokens}.txt"
    cut = derived.ensure(target, derived.inputs_key("gutenberg cut", max_tokens, full.sha256), build)
    return CorpusFile(cut.path, cut.info["tokens"], cut.info["sentences"], len(index))


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

    full = _full_gutenberg_corpus()
    path, index = full.path, full.info["books"]
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
    """Both labelled IMDB splits tokenised, cached as a derived ``.npz`` file.

    Arrays: ``vocabulary`` (the distinct words joined by newlines, one 0-d string), ``ids`` (int32
    word ids of all reviews, concatenated), ``offsets`` (review i is ``ids[offsets[i]:offsets[i+1]]``),
    and per review ``is_test``, ``positive`` (bool), ``number`` and ``rating`` (ints). Rebuilding the
    token lists from word ids shares one string object per distinct word, which keeps the 11.5
    million tokens in about 200 MB instead of over 1 GB.
    """
    import numpy as np

    archive = fetch("imdb", "aclImdb_train_test.tar.gz")
    archive_sha = sha256_file(archive)

    def build(tmp: Path) -> dict:
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
        np.savez(tmp, vocabulary=np.array("\n".join(vocabulary)), ids=np.array(ids, dtype=np.int32),
                 offsets=np.cumsum([0] + [len(row[4]) for row in rows]),
                 is_test=np.array([r[0] for r in rows]), positive=np.array([r[1] for r in rows]),
                 number=np.array([r[2] for r in rows]), rating=np.array([r[3] for r in rows]))
        return {"reviews": len(rows), "words": len(vocabulary)}

    target = cache_dir("derived") / f"imdb-v{IMDB_FORMAT}-{archive_sha[:12]}.npz"
    return derived.ensure(target, derived.inputs_key("imdb tokens", IMDB_FORMAT, archive_sha), build).path


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
