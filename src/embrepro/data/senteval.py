"""SentEval-style transfer tasks (MR, CR, SUBJ, MPQA, SST-2, TREC, MRPC, SICK-E) from the offline mirror.

Each task is read from the files its mirror folder holds (``sentence_cls``, ``mrpc``, ``sick``),
through :func:`embrepro.data.manifest.fetch`, so every file is checked against its sha256. The
evaluation protocol lives in :mod:`embrepro.transfer`.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from embrepro.data.benchmarks import NLI_LABELS, SICK_SEMEVAL_FILES
from embrepro.data.manifest import fetch

__all__ = ["TRANSFER_TASKS", "TransferTask", "load_transfer"]



#: name -> (protocol, classes). Protocols follow SentEval (Conneau & Kiela 2018): "cv" is nested
#: cross-validation on one pool of sentences (MR, CR, SUBJ, MPQA); "kfold" chooses the
#: regularisation by cross-validation on the training split and tests once (TREC, MRPC); "split"
#: chooses it on a dev split (SST-2, SICK-E).
TRANSFER_TASKS = {"MR": ("cv", 2), "CR": ("cv", 2), "SUBJ": ("cv", 2), "MPQA": ("cv", 2),
                  "SST2": ("split", 2), "TREC": ("kfold", 6), "MRPC": ("kfold", 2), "SICKE": ("split", 3)}
_CV_FILES = {"MR": "rt-polarity.all", "CR": "custrev.all", "SUBJ": "subj.all", "MPQA": "mpqa.all"}


@dataclass
class TransferTask:
    """One SentEval-style task: texts (or sentence pairs) with integer labels, per split.

    ``splits`` maps ``train`` (and ``dev``, ``test`` where the task has them) to ``(texts, labels)``;
    for pair tasks each text is a ``(sentence_a, sentence_b)`` tuple. ``protocol`` is one of
    ``cv``, ``kfold`` and ``split`` (see :data:`TRANSFER_TASKS`).
    """

    name: str
    protocol: str
    n_classes: int
    pairs: bool
    splits: dict[str, tuple[list, list[int]]]

    def sizes(self) -> dict[str, int]:
        return {split: len(labels) for split, (_, labels) in self.splits.items()}

    def sentences(self) -> list[str]:
        """Every distinct sentence of the task, in first-seen order (what an encoder must embed)."""
        seen: dict[str, None] = {}
        for texts, _ in self.splits.values():
            for text in texts:
                for sentence in (text if self.pairs else (text,)):
                    seen.setdefault(sentence, None)
        return list(seen)


def _label_first(path) -> tuple[list[str], list[int]]:
    # harvardnlp's files: "<label> <sentence>" per line (blank lines skipped). MR and SUBJ are Latin-1 (with NEL bytes
    # inside lines, which only a byte-level "\n" split keeps intact).
    texts, labels = [], []
    for number, raw in enumerate(Path(path).read_bytes().split(b"\n"), 1):
        line = raw.decode("latin-1").strip()
        if not line:
            continue
        label, _, text = line.partition(" ")
        if not label.isdigit():  # an empty sentence is kept (CR has 4, MPQA 3), as SentEval keeps them
            raise ValueError(f"{Path(path).name} line {number}: expected '<label> <sentence>', got {line[:60]!r}")
        texts.append(text.strip())
        labels.append(int(label))
    return texts, labels


def _mrpc(split: str) -> tuple[list[tuple[str, str]], list[int]]:
    texts, labels = [], []
    with open(fetch("mrpc", f"msr-para-{split}.tsv"), encoding="utf-8-sig") as fh:
        for row in csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE):
            texts.append((row["#1 String"], row["#2 String"]))
            labels.append(int(row["Quality"]))
    return texts, labels


def _sick_entailment(split: str) -> tuple[list[tuple[str, str]], list[int]]:
    texts, labels = [], []
    with open(fetch("sick", SICK_SEMEVAL_FILES[split]), encoding="utf-8") as fh:
        for row in csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE):
            texts.append((row["sentence_A"], row["sentence_B"]))
            labels.append(NLI_LABELS.index(row["entailment_judgment"].lower()))
    return texts, labels


def load_transfer(name: str) -> TransferTask:
    """A SentEval transfer task from the offline mirror.

    Sizes: MR 10,662, CR 3,775, SUBJ 10,000, MPQA 10,606 (one pool each); SST-2 6,920 / 872 /
    1,821 (sentence-level, as in SentEval); TREC 5,452 / 500 (6 coarse classes); MRPC 4,076 / 1,725
    pairs (the mirror's train and val files together are MRPC's training set); SICK-E 4,500 / 500 /
    4,927 pairs (labels in the order of :data:`NLI_LABELS`).
    """
    if name not in TRANSFER_TASKS:
        raise ValueError(f"unknown transfer task {name!r}; choose from {', '.join(TRANSFER_TASKS)}")
    protocol, n_classes = TRANSFER_TASKS[name]
    if name in _CV_FILES:
        splits = {"train": _label_first(fetch("sentence_cls", _CV_FILES[name]))}
    elif name == "SST2":
        splits = {part: _label_first(fetch("sentence_cls", f"stsa.binary.{part}")) for part in ("train", "dev", "test")}
    elif name == "TREC":
        splits = {"train": _label_first(fetch("sentence_cls", "TREC.train.all")),
                  "test": _label_first(fetch("sentence_cls", "TREC.test.all"))}
    elif name == "MRPC":
        train, val = _mrpc("train"), _mrpc("val")
        splits = {"train": (train[0] + val[0], train[1] + val[1]), "test": _mrpc("test")}
    else:  # SICKE
        splits = {"train": _sick_entailment("train"), "dev": _sick_entailment("trial"),
                  "test": _sick_entailment("test")}
    for split, (_, labels) in splits.items():
        bad = sorted(set(labels) - set(range(n_classes)))
        if bad:
            raise ValueError(f"{name} {split}: labels {bad} outside 0..{n_classes - 1}")
    return TransferTask(name, protocol, n_classes, name in ("MRPC", "SICKE"), splits)
