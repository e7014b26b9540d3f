"""Labelled news texts: 20 Newsgroups (bydate) and AG News (test split).

Both load as :class:`LabelledTexts`, plain strings with an integer class, in a fixed order, so
that the same call gives the same list everywhere in the book (and encodings of it are shared
through the embedding cache). :func:`subset` draws a seeded, class-stratified sample that is
likewise the same list for the same arguments.

Chapters import the module itself: ``from embrepro.data import news``.
"""

from __future__ import annotations

import re
import tarfile
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from embrepro.data.manifest import DataError, fetch

__all__ = ["LabelledTexts", "AG_NEWS_CLASSES", "NEWSGROUPS_REMOVE", "load_20newsgroups", "load_ag_news",
           "strip_newsgroup_message", "subset"]

AG_NEWS_CLASSES = ("World", "Sports", "Business", "Sci/Tech")
NEWSGROUPS_REMOVE = ("headers", "footers", "quotes")
_TAR_PREFIX = "data/20ng/20news-bydate-"


@dataclass(frozen=True)
class LabelledTexts:
    """Texts with a class each. ``labels[i]`` indexes ``classes``; ``ids`` name the source item."""

    name: str
    split: str
    texts: list[str]
    labels: np.ndarray
    classes: tuple[str, ...]
    ids: list[str]

    def __len__(self) -> int:
        return len(self.texts)

    def __post_init__(self):
        if not (len(self.texts) == len(self.labels) == len(self.ids)):
            raise ValueError("texts, labels and ids must have the same length")


_QUOTE_LINE = re.compile(r"(writes in|writes:|wrote:|says:|said:|^In article|^Quoted from|^\||^>)")


def strip_newsgroup_message(text: str, remove=NEWSGROUPS_REMOVE) -> str:
    """One newsgroup message without the parts that give its group away cheaply.

    ``headers``: everything up to the first blank line (From:, Subject:, Organization: ...).
    ``footers``: a signature, i.e. whatever follows the last line made only of dashes, when that
    block is short (under 10 lines). ``quotes``: lines quoting another message (starting with
    ``>`` or ``|``) and the "... writes:" lines that introduce them. The same three parts that
    scikit-learn's ``fetch_20newsgroups(remove=...)`` drops, written here for the book's files.
    """
    unknown = set(remove) - set(NEWSGROUPS_REMOVE)
    if unknown:
        raise ValueError(f"remove takes {NEWSGROUPS_REMOVE}, not {sorted(unknown)}")
    if "headers" in remove:
        _, blank, after = text.partition("\n\n")
        text = after if blank else text
    if "quotes" in remove:
        text = "\n".join(line for line in text.split("\n") if not _QUOTE_LINE.search(line))
    if "footers" in remove:
        lines = text.strip().split("\n")
        for i in range(len(lines) - 1, -1, -1):
            if lines[i].strip() and lines[i].strip().strip("-") == "":
                if len(lines) - i <= 10:
                    lines = lines[:i]
                break
        text = "\n".join(lines)
    return text.strip()


@lru_cache(maxsize=2)
def _newsgroup_messages(split: str) -> tuple[tuple[str, str, str], ...]:
    """(group, message id, raw text) of every message of one split, in sorted path order."""
    archive = fetch("20newsgroups", "20news-bydate.tar.gz")
    prefix = f"{_TAR_PREFIX}{split}/"
    out = []
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar:
                if not member.isfile() or not member.name.startswith(prefix):
                    continue
                group, _, message = member.name[len(prefix):].partition("/")
                raw = tar.extractfile(member).read().decode("latin-1")
                out.append((group, message, raw))
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise DataError(f"{archive}: cannot read the 20 Newsgroups archive ({exc})") from exc
    out.sort(key=lambda item: (item[0], int(item[1]) if item[1].isdigit() else item[1]))
    return tuple(out)


def load_20newsgroups(split: str = "test", remove=NEWSGROUPS_REMOVE, drop_empty: bool = True) -> LabelledTexts:
    """20 Newsgroups, bydate version: ``train`` (11,314 messages) or ``test`` (7,532), 20 classes.

    ``remove`` lists the parts stripped by :func:`strip_newsgroup_message` (all three by default,
    the usual protocol since they make the task easy for the wrong reasons); messages left empty
    are dropped when ``drop_empty``. Texts are whitespace-normalised.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', not {split!r}")
    messages = _newsgroup_messages(split)
    classes = tuple(sorted({group for group, _, _ in messages}))
    index = {c: i for i, c in enumerate(classes)}
    texts, labels, ids = [], [], []
    for group, message, raw in messages:
        text = " ".join(strip_newsgroup_message(raw, tuple(remove)).split())
        if drop_empty and not text:
            continue
        texts.append(text)
        labels.append(index[group])
        ids.append(f"{group}/{message}")
    return LabelledTexts("20newsgroups", split, texts, np.asarray(labels, dtype=np.int64), classes, ids)


_ENTITY = re.compile(r" ?#(\d+);")


def _clean_ag(text: str) -> str:
    text = _ENTITY.sub(lambda m: chr(int(m.group(1))), text.replace("\\", " "))
    return " ".join(text.split())


def load_ag_news() -> LabelledTexts:
    """AG News, test split (7,600 articles, 4 classes of 1,900): "title. description" per article.

    Only the test split is mirrored. The file's escapes are undone (``\\`` line breaks become
    spaces, ``#36;`` becomes ``$``).
    """
    import csv

    path = fetch("ag_news", "test.csv")
    texts, labels, ids = [], [], []
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        if header[:3] != ["label", "title", "description"]:
            raise DataError(f"{path}: unexpected header {header}")
        for row_number, row in enumerate(reader):
            label, title, description = row
            title, description = _clean_ag(title), _clean_ag(description)
            joiner = " " if title.endswith((".", "?", "!")) else ". "
            texts.append(f"{title}{joiner}{description}")
            labels.append(int(label) - 1)
            ids.append(str(row_number))
    return LabelledTexts("ag_news", "test", texts, np.asarray(labels, dtype=np.int64), AG_NEWS_CLASSES, ids)


def subset(data: LabelledTexts, n: int, seed: int = 0) -> LabelledTexts:
    """A seeded sample of ``n`` items, stratified by class (each class in proportion, rounded so
    the total is exactly ``n``), in the data's own order. ``n >= len(data)`` returns ``data``."""
    if n <= 0:
        raise ValueError(f"n must be positive, not {n}")
    if n >= len(data):
        return data
    rng = np.random.default_rng(seed)
    counts = np.bincount(data.labels, minlength=len(data.classes))
    quota = np.floor(counts * n / len(data)).astype(int)
    remainder = n - quota.sum()
    by_fraction = np.argsort(-(counts * n / len(data) - quota), kind="stable")
    quota[by_fraction[:remainder]] += 1
    chosen = []
    for label, q in enumerate(quota):
        members = np.flatnonzero(data.labels == label)
        chosen.extend(rng.choice(members, size=q, replace=False).tolist())
    rows = sorted(chosen)
    return LabelledTexts(data.name, f"{data.split}[{n}, seed {seed}]", [data.texts[i] for i in rows],
                         data.labels[rows], data.classes, [data.ids[i] for i in rows])
