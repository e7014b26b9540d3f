"""Position and sticky tokens: the text edits and scores of the position-and-sticky-tokens chapter.

Two procedures, each a few small pure functions so that they can be tested by hand:

* **Positional bias** (Lee, Goel & Ramchandran 2024): edit a document at its start, middle or end
  (insert an unrelated sentence, or delete a sentence) and measure how far its embedding moves
  (1 - cosine to the original); leave each sentence out in turn and regress that movement (the
  sentence's *importance*) on the sentence's relative position.
* **Sticky tokens** (Chen et al. 2025, ``March-7/StickyToken``): insert a token 1..n times into the
  second sentence of a dissimilar pair (as a prefix, as a suffix, and at random word boundaries) and
  count how often the pair becomes *more* similar. The score follows the verification step of the
  official code: per pair and edit type, the mean cosine distance over the n edited versions is
  compared with the original distance; the three edit types are weighted 4/11, 4/11 and 3/11.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import numpy as np

__all__ = ["WHERE", "STICKY_WEIGHTS", "split_sentences", "edit", "leave_one_out", "relative_positions",
           "cosine_distance", "within_slope", "random_insert", "sticky_variants", "sticky_score",
           "similarity_gain", "exceed_count", "frequency_matched", "sample_by_similarity"]

WHERE = ("start", "middle", "end")
STICKY_WEIGHTS = {"prefix": 4 / 11, "suffix": 4 / 11, "insert": 3 / 11}   # the official code's weights

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9(\[\"'])")


def split_sentences(text: str) -> list[str]:
    """Sentences of ``text``: split after ., ! or ? followed by white space and a capital or digit."""
    return [s.strip() for s in _SENTENCE_END.split(text.strip()) if s.strip()]


def _index(n: int, where: str, insert: bool) -> int:
    if where not in WHERE:
        raise ValueError(f"where must be one of {WHERE}, not {where!r}")
    if n < 1:
        raise ValueError("a document needs at least one sentence")
    if where == "start":
        return 0
    if where == "end":
        return n if insert else n - 1
    return n // 2


def edit(sentences: Sequence[str], op: str, where: str, sentence: str | None = None) -> str:
    """The document ``sentences`` after one edit, joined by single spaces.

    ``op="insert"`` puts ``sentence`` before sentence 0 (start), before sentence ``n // 2`` (middle)
    or after the last (end); ``op="delete"`` removes sentence 0, ``n // 2`` or ``n - 1``.
    """
    sentences = list(sentences)
    if op == "insert":
        if not sentence:
            raise ValueError("an insertion needs a sentence")
        i = _index(len(sentences), where, insert=True)
        return " ".join(sentences[:i] + [sentence] + sentences[i:])
    if op == "delete":
        if len(sentences) < 2:
            raise ValueError("deleting from a one-sentence document leaves nothing")
        i = _index(len(sentences), where, insert=False)
        return " ".join(sentences[:i] + sentences[i + 1:])
    raise ValueError(f"op must be 'insert' or 'delete', not {op!r}")


def leave_one_out(sentences: Sequence[str]) -> list[str]:
    """The ``n`` documents with one sentence left out each, in order of the sentence left out."""
    sentences = list(sentences)
    return [" ".join(sentences[:j] + sentences[j + 1:]) for j in range(len(sentences))]


def relative_positions(n: int) -> np.ndarray:
    """Positions 0, 1/(n-1), ..., 1 of ``n`` sentences (0 is the first, 1 the last)."""
    if n < 2:
        raise ValueError("relative positions need at least two sentences")
    return np.arange(n) / (n - 1)


def cosine_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise 1 - cos(a_i, b_i) (rows of zeros count as distance 1)."""
    a, b = np.atleast_2d(np.asarray(a, np.float64)), np.atleast_2d(np.asarray(b, np.float64))
    if a.shape != b.shape:
        raise ValueError(f"row-wise distances need equal shapes, got {a.shape} and {b.shape}")
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    cos = np.divide((a * b).sum(axis=1), norms, out=np.zeros(len(a)), where=norms > 0)
    return 1.0 - cos


def within_slope(values: Sequence[np.ndarray], positions: Sequence[np.ndarray]) -> float:
    """Pooled within-document least-squares slope of ``values`` on ``positions``.

    Each document's values and positions are centred on the document's own means first, so a
    document whose sentences all matter a lot does not tilt the line: only the ordering inside
    documents counts.
    """
    num = den = 0.0
    for v, p in zip(values, positions):
        v, p = np.asarray(v, np.float64), np.asarray(p, np.float64)
        if v.shape != p.shape:
            raise ValueError("each document needs one value per position")
        pc = p - p.mean()
        num += float(pc @ (v - v.mean()))
        den += float(pc @ pc)
    if den == 0:
        raise ValueError("positions do not vary inside any document")
    return num / den


def random_insert(text: str, token: str, rng: np.random.Generator) -> str:
    """``text`` with ``token`` put at a random word boundary (the start and the end included)."""
    words = text.split(" ")
    i = int(rng.integers(0, len(words) + 1))
    return " ".join(words[:i] + [token] + words[i:])


def sticky_variants(text: str, token: str, n: int, rng: np.random.Generator,
                    joiner: str = "") -> dict[str, list[str]]:
    """The official code's three edit types, ``n`` versions each, of one sentence.

    ``prefix``: ``token`` repeated i times, then the text (i = 1..n); ``suffix``: the text, then the
    repeats; ``insert``: i copies put at random word boundaries one after another (each version adds
    one to the previous). ``joiner`` goes between repeats and text; the official code concatenates
    with nothing in between (``""``).
    """
    if n < 1:
        raise ValueError("n must be at least 1")
    prefix = [joiner.join([token] * i) + joiner + text for i in range(1, n + 1)]
    suffix = [text + joiner + joiner.join([token] * i) for i in range(1, n + 1)]
    insert, current = [], text
    for _ in range(n):
        current = random_insert(current, token, rng)
        insert.append(current)
    return {"prefix": prefix, "suffix": suffix, "insert": insert}


def _check_distances(base: np.ndarray, variants: Mapping[str, np.ndarray]) -> None:
    if set(variants) != set(STICKY_WEIGHTS):
        raise ValueError(f"variants need exactly the edit types {sorted(STICKY_WEIGHTS)}")
    for d in variants.values():
        if d.ndim != 2 or d.shape[0] != len(base):
            raise ValueError("each edit type needs a (pairs, versions) array of distances")


def sticky_score(base: Sequence[float], variants: Mapping[str, np.ndarray],
                 items: np.ndarray | None = None) -> float:
    """The verification score of one token, in [0, 1].

    ``base[p]``: cosine distance of pair p before the edit; ``variants[type][p, i]``: after the i-th
    edited version. A pair counts for an edit type when the mean distance over its versions is
    strictly below the original; the score is the weighted share of pairs that count (weights
    :data:`STICKY_WEIGHTS`). ``items`` (indices, repeats allowed) resamples the pairs.
    """
    base = np.asarray(base, np.float64)
    variants = {k: np.asarray(v, np.float64) for k, v in variants.items()}
    _check_distances(base, variants)
    idx = np.arange(len(base)) if items is None else np.asarray(items)
    return float(sum(w * np.mean(variants[k][idx].mean(axis=1) < base[idx]) for k, w in STICKY_WEIGHTS.items()))


def similarity_gain(base: Sequence[float], variants: Mapping[str, np.ndarray],
                    items: np.ndarray | None = None) -> float:
    """Mean rise in cosine similarity (original distance - edited distance), same weights as the score."""
    base = np.asarray(base, np.float64)
    variants = {k: np.asarray(v, np.float64) for k, v in variants.items()}
    _check_distances(base, variants)
    idx = np.arange(len(base)) if items is None else np.asarray(items)
    return float(sum(w * np.mean(base[idx, None] - variants[k][idx]) for k, w in STICKY_WEIGHTS.items()))


def exceed_count(listed: Sequence[float], controls: Sequence[float], percentile: float = 95.0) -> int:
    """How many ``listed`` scores lie strictly above the ``percentile``-th percentile of ``controls``."""
    controls = np.asarray(controls, np.float64)
    if len(controls) == 0:
        raise ValueError("no control scores")
    bar = np.percentile(controls, percentile)
    return int(np.sum(np.asarray(listed, np.float64) > bar))


def frequency_matched(counts: Mapping[str, int], targets: Sequence[str], candidates: Sequence[str],
                      k: int, seed: int = 0) -> dict[str, list[str]]:
    """``k`` control tokens per target, the nearest in log(1 + count), none used twice.

    Candidates are visited in a seeded random order, so ties (for instance the many tokens a corpus
    never contains) are broken at random; targets are served in order, each taking the ``k``
    unused candidates closest to it. A token missing from ``counts`` has count 0.
    """
    rng = np.random.default_rng(seed)
    pool = [c for c in candidates if c not in set(targets)]
    if k * len(targets) > len(pool):
        raise ValueError(f"{len(pool)} candidates cannot give {k} controls to each of {len(targets)} targets")
    pool = [pool[i] for i in rng.permutation(len(pool))]
    logc = np.log1p(np.array([counts.get(c, 0) for c in pool], np.float64))
    used = np.zeros(len(pool), bool)
    out = {}
    for t in targets:
        gap = np.abs(logc - np.log1p(counts.get(t, 0)))
        gap[used] = np.inf
        pick = np.argsort(gap, kind="stable")[:k]
        used[pick] = True
        out[t] = [pool[i] for i in pick]
    return out


def sample_by_similarity(similarities: Sequence[float], n: int, low: float, high: float) -> np.ndarray:
    """Indices of ``n`` distinct items whose similarities come closest to ``n`` evenly spaced targets.

    Targets run from ``low`` to ``high``; each takes the nearest item not taken before (the
    official code samples pairs evenly over a similarity range this way).
    """
    sims = np.asarray(similarities, np.float64)
    if n > len(sims):
        raise ValueError(f"cannot take {n} items from {len(sims)}")
    order = np.argsort(sims, kind="stable")
    sorted_sims = sims[order]
    taken = np.zeros(len(sims), bool)
    picks = []
    for target in np.linspace(low, high, n):
        j = int(np.searchsorted(sorted_sims, target))
        lo, hi = j - 1, j
        while lo >= 0 and taken[lo]:   # the nearest untaken item on each side
            lo -= 1
        while hi < len(sims) and taken[hi]:
            hi += 1
        cand = [c for c in (lo, hi) if 0 <= c < len(sims)]
        best = min(cand, key=lambda c: (abs(sorted_sims[c] - target), c))
        taken[best] = True
        picks.append(int(order[best]))
    return np.array(picks)
