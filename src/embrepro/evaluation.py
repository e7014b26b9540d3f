"""Evaluations shared by chapters: STS, word similarity, analogies.

Conventions (stated once, used everywhere):

* STS: Spearman correlation x 100 between gold scores and the cosine of the two sentence
  embeddings, as in SBERT and MTEB. A pair where one side has no embedding (all-zero vector)
  gets cosine 0.
* Word similarity: Spearman x 100 over the pairs whose both words are in the vocabulary, with the
  coverage (share of pairs evaluated) reported beside it; computed by gensim's
  ``KeyedVectors.evaluate_word_pairs``. :func:`word_similarity_oov` instead scores every pair
  under a stated out-of-vocabulary policy (skip, null vector, character n-gram vector).
* Analogies: 3CosAdd exact-match accuracy over a vocabulary restricted to the most frequent words,
  with the rule of gensim's ``KeyedVectors.evaluate_word_analogies`` (case-insensitive), scored in
  batches (:func:`_analogy_sections`). Questions with a word outside the
  restricted vocabulary are skipped, as in word2vec's ``compute-accuracy``; the share of questions
  seen is reported as coverage. Semantic sections are those whose name does not start with ``gram``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.stats import pearsonr, spearmanr

from embrepro.data import SentencePairs, analogy_file, fetch, load_word_similarity, WORD_SIMILARITY_FILES


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


@dataclass
class WordPairCosines:
    """One vector set's cosines on the in-vocabulary pairs of a word-similarity set.

    ``pairs``, ``gold`` and ``cosines`` are aligned; ``total`` counts all pairs of the set, so that
    ``coverage`` is the share (%) that could be scored. ``spearman`` equals what
    :func:`word_similarity` reports for the same vectors.
    """

    dataset: str
    pairs: list[tuple[str, str]]
    gold: np.ndarray
    cosines: np.ndarray
    total: int

    @property
    def coverage(self) -> float:
        return 100 * len(self.pairs) / self.total if self.total else 0.0

    @property
    def spearman(self) -> float:
        if len(self.pairs) < 3:
            return float("nan")
        return 100 * float(spearmanr(self.cosines, self.gold).statistic)


def word_pair_cosines(vectors, name: str) -> WordPairCosines:
    """Cosines of gensim ``KeyedVectors`` on the pairs of one set whose two words have a vector.

    The pairs are lower-cased (:func:`embrepro.data.load_word_similarity`) and looked up as they
    are, so the vocabulary should be lower-case too, as the book's tokeniser makes it.
    """
    data = load_word_similarity(name)
    keep = [(pair, score) for pair, score in zip(data.pairs, data.scores)
            if pair[0] in vectors.key_to_index and pair[1] in vectors.key_to_index]
    pairs = [p for p, _ in keep]
    gold = np.array([s for _, s in keep], dtype=np.float64)
    if pairs:
        a = vectors[[p[0] for p in pairs]]
        b = vectors[[p[1] for p in pairs]]
        cos = cosine_rows(a, b)
    else:
        cos = np.zeros(0)
    return WordPairCosines(name, pairs, gold, cos, len(data))


OOV_POLICIES = ("skip", "null", "ngram")


def word_similarity_oov(vectors, name: str, policy: str = "skip") -> dict:
    """Spearman x 100 on one word-similarity set under an out-of-vocabulary (OOV) policy.

    A word is OOV when it is not a key of the trained vocabulary (``vectors.key_to_index``; a
    fastText model answers for *any* word, so ``word in vectors`` is no test). Policies, as in
    Bojanowski et al. (2017):

    * ``skip``: drop every pair with an OOV word (what ``evaluate_word_pairs`` does);
    * ``null``: give OOV words the zero vector, so their pairs score cosine 0 (the paper's
      ``sisg-``, and how it scores word2vec);
    * ``ngram``: build OOV vectors from character n-grams (the paper's ``sisg``); needs fastText
      vectors (gensim ``FastTextKeyedVectors`` with n-gram buckets).

    Returns the Spearman, the number of pairs scored, and the OOV rate: the share (%) of the set's
    pairs with at least one OOV word, and of its distinct words that are OOV; also the scored pairs'
    ``cosines`` and ``gold`` ratings, in the set's order (under ``null`` and ``ngram`` every pair is
    scored, so two models' cosines are aligned pair by pair). Pairs are
    lower-cased (:func:`embrepro.data.load_word_similarity`) and looked up as they are.
    """
    if policy not in OOV_POLICIES:
        raise ValueError(f"policy must be one of {OOV_POLICIES}, not {policy!r}")
    if policy == "ngram" and not getattr(vectors, "bucket", 0):
        raise ValueError("policy 'ngram' needs fastText vectors with n-gram buckets; "
                         "word2vec vectors can only 'skip' or use 'null' vectors")
    data = load_word_similarity(name)
    known = vectors.key_to_index
    oov = [a not in known or b not in known for a, b in data.pairs]
    words = {w for pair in data.pairs for w in pair}
    zero = np.zeros(vectors.vector_size, dtype=np.float64)

    def vector(word: str) -> np.ndarray:
        if word in known or policy == "ngram":
            return vectors.get_vector(word)
        return zero

    rows = [i for i, missing in enumerate(oov) if not (missing and policy == "skip")]
    gold = np.array([data.scores[i] for i in rows], dtype=np.float64)
    if rows:
        cos = cosine_rows(np.array([vector(data.pairs[i][0]) for i in rows]),
                          np.array([vector(data.pairs[i][1]) for i in rows]))
    else:
        cos = np.zeros(0)
    spearman = 100 * float(spearmanr(cos, gold).statistic) if len(rows) >= 3 else float("nan")
    return {
        "dataset": name,
        "policy": policy,
        "spearman": spearman if np.isfinite(spearman) else float("nan"),
        "pairs": len(data),
        "scored": len(rows),
        "oov_pairs": 100 * sum(oov) / len(data),
        "oov_words": 100 * sum(w not in known for w in words) / len(words),
        "cosines": cos,  # the scored pairs' cosines, aligned with "gold" (for paired bootstraps)
        "gold": gold,
    }


def _analogy_sections(vectors, path, restrict_vocab: int, chunk: int = 1024) -> list[dict]:
    """Sections of an analogy file scored by 3CosAdd, case-insensitive, in batches.

    Gives the same answers as gensim's ``evaluate_word_analogies(path, restrict_vocab,
    case_insensitive=True)`` (a test compares them), several times faster: it scores a block of
    questions with one matrix product instead of one ``most_similar`` call each.
    """
    keys = vectors.index_to_key[:restrict_vocab]
    index = {k.upper(): i for i, k in reversed(list(enumerate(keys)))}  # most frequent variant wins
    group = np.array([index[k.upper()] for k in keys])  # case variants share the group of the first
    sections: list[dict] = []
    questions: list[tuple[int, tuple[str, ...], tuple[int, ...]]] = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.startswith(": "):
                sections.append({"section": line[2:].strip(), "correct": [], "incorrect": []})
                continue
            words = tuple(w.upper() for w in line.split())
            if len(words) != 4 or not sections:
                continue
            if all(w in index for w in words):
                questions.append((len(sections) - 1, words, tuple(index[w] for w in words)))
    if not questions:
        return sections
    unit = np.asarray(vectors.vectors[:len(keys)], dtype=np.float32)
    norms = np.linalg.norm(unit, axis=1, keepdims=True)
    unit = np.divide(unit, norms, out=np.zeros_like(unit), where=norms > 0)
    ids = np.array([q[2] for q in questions])
    for start in range(0, len(ids), chunk):
        block = ids[start:start + chunk]
        target = unit[block[:, 1]] + unit[block[:, 2]] - unit[block[:, 0]]
        sims = target @ unit.T
        rows = np.arange(len(block))[:, None]
        sims[rows, block[:, :3]] = -np.inf  # the three question words never answer
        k = min(8, len(keys))
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        top = np.take_along_axis(top, np.argsort(-np.take_along_axis(sims, top, axis=1), axis=1), axis=1)
        for (s, words, _), (a, b, c, expected), ranked in zip(questions[start:start + chunk], block, top):
            # gensim: the 5 best words other than the question's three, then the first of those
            # that is no case variant of a question word (else the last of the five)
            candidates = [i for i in ranked if i not in (a, b, c)][:5]
            ignore = {group[a], group[b], group[c]}
            predicted = next((group[i] for i in candidates if group[i] not in ignore),
                             group[candidates[-1]] if candidates else -1)
            sections[s]["correct" if predicted == group[expected] else "incorrect"].append(words)
    return sections


def analogy_accuracy(vectors, name: str = "google", restrict_vocab: int = 30_000) -> dict:
    """3CosAdd accuracy (%) overall, on semantic and on syntactic sections, with coverage."""
    path = analogy_file(name)
    total_questions = sum(1 for line in open(path, encoding="utf-8") if line.strip() and not line.startswith(":"))
    sections = _analogy_sections(vectors, path, restrict_vocab)
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


def analogy_answers(vectors, name: str = "google", restrict_vocab: int = 30_000, *, path=None):
    """Per-question 3CosAdd results: one row per question asked, for paired comparisons.

    ``path``: read the questions from this file instead of the named set (e.g. a subset of it).

    Returns a pandas DataFrame with columns ``section``, ``kind`` ("semantic" or "syntactic"),
    ``question`` (the four words, upper-cased, space-separated) and ``correct`` (bool), in the
    file's section order and, within a section, sorted by question. Two vector sets with the same
    restricted vocabulary are asked the same questions, so their rows line up one to one and can
    be compared question by question (``stats.paired_bootstrap``). The accuracies of
    :func:`analogy_accuracy` are the means of ``correct`` per kind.
    """
    import pandas as pd

    rows = []
    source = Path(path) if path is not None else analogy_file(name)
    for section in _analogy_sections(vectors, source, restrict_vocab):
        if section["section"] == "Total accuracy":
            continue
        kind = "syntactic" if section["section"].startswith("gram") else "semantic"
        answered = [(" ".join(q), True) for q in section["correct"]] + [(" ".join(q), False) for q in section["incorrect"]]
        rows += [{"section": section["section"], "kind": kind, "question": q, "correct": ok}
                 for q, ok in sorted(answered)]
    return pd.DataFrame(rows, columns=["section", "kind", "question", "correct"])
