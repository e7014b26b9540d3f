"""Evaluations shared by chapters: STS, word similarity, analogies.

Conventions (stated once, used everywhere):

* STS: Spearman correlation x 100 between gold scores and the cosine of the two sentence
  embeddings, as in SBERT and MTEB. A pair where one side has no embedding (all-zero vector)
  gets cosine 0.
* Word similarity: Spearman x 100 over the pairs whose both words are in the vocabulary, with the
  coverage (share of pairs evaluated) reported beside it; computed by gensim's
  ``KeyedVectors.evaluate_word_pairs``.
* Analogies: 3CosAdd exact-match accuracy over a vocabulary restricted to the most frequent words,
  computed by gensim's ``KeyedVectors.evaluate_word_analogies``. Questions with a word outside the
  restricted vocabulary are skipped, as in word2vec's ``compute-accuracy``; the share of questions
  seen is reported as coverage. Semantic sections are those whose name does not start with ``gram``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import pearsonr, spearmanr

from embrepro.data import SentencePairs, analogy_file, fetch, WORD_SIMILARITY_FILES


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity of each row of ``a`` with the same row of ``b`` (0 where a row is zero)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    dots = np.einsum("ij,ij->i", a, b)
    return np.divide(dots, norms, out=np.zeros_like(dots), where=norms > 0)


@dataclass
class STSResult:
    dataset: str
    split: str
    spearman: float
    pearson: float
    pairs: int
    cosines: np.ndarray

    def as_dict(self) -> dict:
        return {"dataset": self.dataset, "split": self.split, "spearman": self.spearman,
                "pearson": self.pearson, "pairs": self.pairs}


def evaluate_sts(encode: Callable[[Sequence[str]], np.ndarray], data: SentencePairs) -> STSResult:
    """Spearman x 100 of cosine similarity against gold scores. ``encode`` maps texts to rows."""
    unique = list(dict.fromkeys(data.sentences1 + data.sentences2))
    vectors = np.asarray(encode(unique))
    row = {text: i for i, text in enumerate(unique)}
    e1 = vectors[[row[s] for s in data.sentences1]]
    e2 = vectors[[row[s] for s in data.sentences2]]
    cos = cosine_rows(e1, e2)
    return STSResult(
        dataset=data.name,
        split=data.split,
        spearman=100 * float(spearmanr(cos, data.scores).statistic),
        pearson=100 * float(pearsonr(cos, data.scores).statistic),
        pairs=len(data),
        cosines=cos,
    )


def bootstrap_spearman_difference(cos_a: np.ndarray, cos_b: np.ndarray, gold: Sequence[float],
                                  n_boot: int = 1000, seed: int = 0) -> np.ndarray:
    """Bootstrap over pairs of Spearman(a) - Spearman(b) x 100, resampling the same pairs for both."""
    rng = np.random.default_rng(seed)
    gold = np.asarray(gold)
    n = len(gold)
    out = np.empty(n_boot)
    for i in range(n_boot):
        idx = rng.integers(0, n, n)
        out[i] = 100 * (spearmanr(cos_a[idx], gold[idx]).statistic - spearmanr(cos_b[idx], gold[idx]).statistic)
    return out


def word_similarity(vectors, name: str) -> dict:
    """Spearman x 100 and coverage of gensim ``KeyedVectors`` on one word-similarity set."""
    path = fetch("wordsim", WORD_SIMILARITY_FILES[name])
    total = sum(1 for line in open(path, encoding="utf-8") if len(line.split()) >= 3)
    import logging

    gensim_log = logging.getLogger("gensim.models.keyedvectors")
    level = gensim_log.level
    gensim_log.setLevel(logging.ERROR)
    try:
        pearson, spearman, oov_percent = vectors.evaluate_word_pairs(
            str(path), delimiter="\t", case_insensitive=True, restrict_vocab=len(vectors))
    finally:
        gensim_log.setLevel(level)
    return {
        "dataset": name,
        "spearman": 100 * float(spearman.statistic) if np.isfinite(spearman.statistic) else float("nan"),
        "pearson": 100 * float(pearson[0]) if np.isfinite(pearson[0]) else float("nan"),
        "coverage": 100 - float(oov_percent),
        "pairs": total,
    }


def analogy_accuracy(vectors, name: str = "google", restrict_vocab: int = 30_000) -> dict:
    """3CosAdd accuracy (%) overall, on semantic and on syntactic sections, with coverage."""
    path = analogy_file(name)
    total_questions = sum(1 for line in open(path, encoding="utf-8") if line.strip() and not line.startswith(":"))
    _, sections = vectors.evaluate_word_analogies(str(path), restrict_vocab=restrict_vocab, case_insensitive=True)
    counts = {"semantic": [0, 0], "syntactic": [0, 0]}
    per_section = {}
    for section in sections:
        if section["section"] == "Total accuracy":
            continue
        kind = "syntactic" if section["section"].startswith("gram") else "semantic"
        right, wrong = len(section["correct"]), len(section["incorrect"])
        counts[kind][0] += right
        counts[kind][1] += wrong
        per_section[section["section"]] = 100 * right / (right + wrong) if right + wrong else float("nan")

    def pct(right: int, wrong: int) -> float:
        return 100 * right / (right + wrong) if right + wrong else 0.0

    seen = sum(r + w for r, w in counts.values())
    return {
        "semantic": pct(*counts["semantic"]),
        "syntactic": pct(*counts["syntactic"]),
        "total": pct(sum(c[0] for c in counts.values()), sum(c[1] for c in counts.values())),
        "coverage": 100 * seen / total_questions,
        "questions_seen": seen,
        "sections": per_section,
    }
