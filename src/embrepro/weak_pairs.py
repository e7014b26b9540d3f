"""Weak (anchor, positive) pairs for contrastive pre-training, BM25-mined hard negatives, a filter.

The contrastive pre-training papers (cpt, E5) train on pairs that nobody labelled: text that sits
next to other text. This module builds three kinds from the book's own data:

* :func:`title_abstract_pairs`: a paper's title as the anchor, its abstract as the positive (one of
  E5's CCPairs sources; here from SciFact's corpus, leaving out every document the caller excludes,
  so that the documents of an evaluation never enter training);
* :func:`neighbour_pairs`: two consecutive passages of a Gutenberg book (cpt's "neighbouring
  pieces of text");
* :func:`inverse_cloze_pairs`: one sentence of a passage against the rest of that passage, the
  inverse cloze task of Lee et al. (2019).

Every pair carries a ``group`` (the document or the place in a book it came from) so that a
miner can recognise a candidate that is not a true negative. :func:`mine_bm25_negatives` gives
each anchor one hard negative: the best-scoring BM25 candidate among the other pairs' positives,
with or without the *false-negative filter*, which drops (a) candidates from the anchor's own
neighbourhood (the same document, or a passage within ``window`` passages in the same book:
text the pairing rule itself would call a positive) and (b) candidates that the miner scores at
least ``ratio`` times as high as the anchor's own positive (too close to be trusted as negatives).

:func:`query_difference` and :func:`trend_interval` turn per-query nDCG of several seeds into the
intervals the verdict rules need.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

__all__ = ["NegativeMining", "WeakPairs", "bag_encoder", "consistency_filter", "examples_seen_budget", "gutenberg_blocks", "inverse_cloze_pairs",
           "mine_bm25_negatives", "neighbour_pairs", "query_difference", "title_abstract_pairs",
           "trend_interval", "truncate_words"]


def truncate_words(text: str, max_words: int | None) -> str:
    """The first ``max_words`` whitespace-separated words of ``text`` (all of them when None)."""
    if max_words is not None and max_words < 1:
        raise ValueError(f"max_words must be positive or None, got {max_words}")
    words = text.split()
    return " ".join(words if max_words is None else words[:max_words])


@dataclass
class WeakPairs:
    """Pairs of texts with where each came from: ``source`` (the pair kind) and ``group`` (its origin).

    ``group[i]`` is ``(origin, position)``: a document id with position 0, or a book and the
    passage index in it. Two texts of the same origin within a few positions are neighbours.
    """

    anchors: list[str]
    positives: list[str]
    source: list[str]
    group: list[tuple[str, int]]
    negatives: list[str] | None = field(default=None)

    def __post_init__(self):
        n = len(self.anchors)
        if not (len(self.positives) == len(self.source) == len(self.group) == n):
            raise ValueError("anchors, positives, source and group must be equally long")
        if self.negatives is not None and len(self.negatives) != n:
            raise ValueError(f"{len(self.negatives)} negatives for {n} pairs")

    def __len__(self) -> int:
        return len(self.anchors)

    def __add__(self, other: "WeakPairs") -> "WeakPairs":
        if (self.negatives is None) != (other.negatives is None):
            raise ValueError("cannot join pairs with negatives to pairs without")
        neg = None if self.negatives is None else self.negatives + other.negatives
        return WeakPairs(self.anchors + other.anchors, self.positives + other.positives,
                         self.source + other.source, self.group + other.group, neg)

    def subset(self, indices) -> "WeakPairs":
        idx = [int(i) for i in indices]
        neg = None if self.negatives is None else [self.negatives[i] for i in idx]
        return WeakPairs([self.anchors[i] for i in idx], [self.positives[i] for i in idx],
                         [self.source[i] for i in idx], [self.group[i] for i in idx], neg)

    def with_negatives(self, negatives: Sequence[str]) -> "WeakPairs":
        return WeakPairs(self.anchors, self.positives, self.source, self.group, list(negatives))

    def examples(self, hard_negatives: bool = False) -> list[tuple[str, ...]]:
        """``(anchor, positive)`` tuples, or ``(anchor, positive, negative)`` with ``hard_negatives``."""
        if hard_negatives:
            if self.negatives is None:
                raise ValueError("these pairs have no mined negatives; call mine_bm25_negatives first")
            return list(zip(self.anchors, self.positives, self.negatives))
        return list(zip(self.anchors, self.positives))

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for s in self.source:
            out[s] = out.get(s, 0) + 1
        return out


def bag_encoder(vocabulary: Sequence[str], matrix: np.ndarray, *, trainable: bool = True, device: str = "cpu"):
    """The cheapest trainable sentence encoder: word vectors (initialised from ``matrix``) averaged.

    A sentence-transformers model of a whitespace tokenizer, a ``WordEmbeddings`` layer whose rows
    train when ``trainable`` and mean pooling. Before any update it *is* averaged word vectors, so
    the untrained model is its own control. Row 0 is the padding row (see
    :func:`embrepro.siamese.glove_vocabulary`).
    """
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer import modules

    if len(vocabulary) != len(matrix):
        raise ValueError(f"{len(vocabulary)} words but {len(matrix)} rows")
    tokenizer = modules.tokenizer.WhitespaceTokenizer(list(vocabulary), stop_words=[], do_lower_case=True)
    emb = modules.WordEmbeddings(tokenizer, torch.as_tensor(np.array(matrix, dtype=np.float32)),
                                 update_embeddings=trainable)
    return SentenceTransformer(modules=[emb, modules.Pooling(matrix.shape[1], "mean")], device=device)


# --------------------------------------------------------------------------------------------
# Building pairs
# --------------------------------------------------------------------------------------------

def title_abstract_pairs(corpus: dict[str, dict[str, str]], exclude: set[str] | frozenset = frozenset(),
                         max_words: int | None = None) -> WeakPairs:
    """(title, abstract) for every document of ``corpus`` with both, except the ids in ``exclude``."""
    anchors, positives, groups = [], [], []
    for doc_id, doc in corpus.items():
        title, text = (doc.get("title") or "").strip(), (doc.get("text") or "").strip()
        if doc_id in exclude or not title or not text:
            continue
        anchors.append(truncate_words(title, max_words))
        positives.append(truncate_words(text, max_words))
        groups.append((f"doc:{doc_id}", 0))
    return WeakPairs(anchors, positives, ["title-abstract"] * len(anchors), groups)


def gutenberg_blocks(n_blocks: int, block_lines: int, seed: int = 0, lines: Sequence[str] | None = None,
                     book_sizes: Sequence[int] | None = None) -> list[tuple[int, int, list[str]]]:
    """``n_blocks`` non-overlapping runs of ``block_lines`` consecutive sentences, each inside one book.

    Returns ``(book, first line within the book, sentences)`` in corpus order. Without ``lines``
    and ``book_sizes`` the whole Gutenberg corpus is read (one sentence a line, books in the
    order of its index); tests pass a small corpus instead. A book is chosen with probability
    proportional to its number of possible blocks, then a start inside it; a block that would
    overlap one already chosen is drawn again.
    """
    if n_blocks < 1 or block_lines < 1:
        raise ValueError(f"need n_blocks >= 1 and block_lines >= 1, got {n_blocks} and {block_lines}")
    if lines is None:
        from embrepro.data import corpora

        full = corpora._full_gutenberg_corpus()  # the per-book index is needed to keep blocks inside a book
        book_sizes = [b["sentences"] for b in full.info["books"]]
        path = full.path
    elif book_sizes is None or sum(book_sizes) != len(lines):
        raise ValueError("book_sizes must be given with lines and sum to their number")
    sizes = np.asarray(book_sizes, dtype=np.int64)
    starts_per_book = np.maximum(sizes - block_lines + 1, 0)
    if int((sizes // block_lines).sum()) < n_blocks:
        raise ValueError(f"the corpus is too small for {n_blocks} blocks of {block_lines} sentences")
    first_line = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    rng = np.random.default_rng(seed)
    p = starts_per_book / starts_per_book.sum()
    taken: set[int] = set()
    chosen: list[tuple[int, int]] = []
    attempts = 0
    while len(chosen) < n_blocks:
        attempts += 1
        if attempts > 100 * n_blocks:
            raise ValueError(f"could not place {n_blocks} non-overlapping blocks of {block_lines} sentences")
        book = int(rng.choice(len(sizes), p=p))
        start = int(rng.integers(0, starts_per_book[book]))
        span = range(first_line[book] + start, first_line[book] + start + block_lines)
        if any(i in taken for i in span):
            continue
        taken.update(span)
        chosen.append((book, start))
    chosen.sort(key=lambda bs: first_line[bs[0]] + bs[1])
    if lines is None:
        wanted = sorted(taken)
        got: dict[int, str] = {}
        k = 0
        with open(path, encoding="utf-8") as fh:
            for i, line in enumerate(fh):
                if i == wanted[k]:
                    got[i] = line.rstrip("\n")
                    k += 1
                    if k == len(wanted):
                        break
        text_of = got.__getitem__
    else:
        text_of = lines.__getitem__
    return [(book, start, [text_of(int(first_line[book]) + start + j) for j in range(block_lines)])
            for book, start in chosen]


def neighbour_pairs(blocks: Sequence[tuple[int, int, list[str]]], passage_sentences: int,
                    max_words: int | None = None) -> WeakPairs:
    """Each block of ``2 * passage_sentences`` sentences gives (first passage, the passage after it)."""
    anchors, positives, groups = [], [], []
    for book, start, sentences in blocks:
        if len(sentences) != 2 * passage_sentences:
            raise ValueError(f"a neighbour block needs {2 * passage_sentences} sentences, got {len(sentences)}")
        anchors.append(truncate_words(" ".join(sentences[:passage_sentences]), max_words))
        positives.append(truncate_words(" ".join(sentences[passage_sentences:]), max_words))
        groups.append((f"book:{book}", start // passage_sentences))
    return WeakPairs(anchors, positives, ["neighbours"] * len(anchors), groups)


def inverse_cloze_pairs(blocks: Sequence[tuple[int, int, list[str]]], seed: int = 0,
                        max_words: int | None = None) -> WeakPairs:
    """Each block (a passage): one sentence drawn at random against the passage without it."""
    rng = np.random.default_rng(seed)
    anchors, positives, groups = [], [], []
    for book, start, sentences in blocks:
        if len(sentences) < 2:
            raise ValueError("the inverse cloze task needs passages of at least two sentences")
        j = int(rng.integers(0, len(sentences)))
        anchors.append(truncate_words(sentences[j], max_words))
        positives.append(truncate_words(" ".join(s for i, s in enumerate(sentences) if i != j), max_words))
        groups.append((f"book:{book}", start // len(sentences)))
    return WeakPairs(anchors, positives, ["inverse cloze"] * len(anchors), groups)


# --------------------------------------------------------------------------------------------
# Hard negatives and the false-negative filter
# --------------------------------------------------------------------------------------------

@dataclass
class NegativeMining:
    """What the miner did: one negative per pair, how many candidates each filter rule removed."""

    negatives: list[str]
    rank: list[int]                 # rank (0 = best) of the chosen candidate in the miner's list
    dropped_neighbour: int = 0      # candidates removed as the anchor's own neighbourhood
    dropped_score: int = 0          # candidates removed for scoring too close to the positive
    fallback: int = 0               # anchors whose candidates were all removed (a random other positive)
    own_rank: list[int] = field(default_factory=list)  # rank of each pair's own positive in the pool (0 = first)

    def summary(self) -> dict[str, float]:
        return {"pairs": len(self.negatives), "median rank of the negative": float(np.median(self.rank)),
                "removed as neighbours": self.dropped_neighbour, "removed as too close to the positive":
                self.dropped_score, "random fallback": self.fallback}


def _is_neighbour(a: tuple[str, int], b: tuple[str, int], window: int) -> bool:
    return a[0] == b[0] and abs(a[1] - b[1]) <= window


def mine_bm25_negatives(pairs: WeakPairs, *, filtered: bool, window: int = 2, ratio: float = 0.95,
                        depth: int = 30, seed: int = 0,
                        score_fn: Callable[[str], np.ndarray] | None = None) -> NegativeMining:
    """One hard negative per pair: the best BM25 candidate among the other pairs' positives.

    The candidate pool is every positive of ``pairs``; for anchor ``i`` the miner ranks the pool
    by BM25 (Lucene variant, k1 = 0.9, b = 0.4, English stop words, as
    :class:`embrepro.retrieval.BM25Index`) and looks at the ``depth`` best. Unfiltered, it takes
    the best candidate that is not the pair's own positive (nor an identical text). ``filtered``
    also skips candidates of the anchor's own neighbourhood (same origin within ``window``
    positions) and candidates scoring at least ``ratio`` x the own positive's score. When every
    candidate is removed, a random other positive stands in (counted in ``fallback``).
    ``score_fn`` (anchor -> scores over the pool) replaces BM25, for tests.
    """
    if not 0 < ratio:
        raise ValueError(f"ratio must be positive, got {ratio}")
    if depth < 1 or window < 0:
        raise ValueError(f"need depth >= 1 and window >= 0, got {depth} and {window}")
    n = len(pairs)
    if n < 2:
        raise ValueError("mining needs at least two pairs")
    if score_fn is None:
        import bm25s

        retriever = bm25s.BM25(k1=0.9, b=0.4, method="lucene")
        retriever.index(bm25s.tokenize(pairs.positives, stopwords="en", show_progress=False), show_progress=False)
        query_tokens = bm25s.tokenize(pairs.anchors, stopwords="en", return_ids=False, show_progress=False)

        def score_fn_i(i: int) -> np.ndarray:
            return np.asarray(retriever.get_scores(query_tokens[i]), dtype=np.float64) if query_tokens[i] \
                else np.zeros(n)
    else:
        def score_fn_i(i: int) -> np.ndarray:
            return np.asarray(score_fn(pairs.anchors[i]), dtype=np.float64)

    rng = np.random.default_rng(seed)
    out = NegativeMining([], [])
    for i in range(n):
        scores = score_fn_i(i)
        if scores.shape != (n,):
            raise ValueError(f"the miner returned {scores.shape} scores for a pool of {n}")
        own = scores[i]
        out.own_rank.append(int(np.sum(scores > own)) if own > 0 else n - 1)
        order = np.argsort(-scores, kind="stable")[:depth + 1]
        pick = None
        for rank, j in enumerate(order):
            j = int(j)
            if j == i or pairs.positives[j] == pairs.positives[i] or scores[j] <= 0:
                continue
            if filtered:
                if _is_neighbour(pairs.group[i], pairs.group[j], window):
                    out.dropped_neighbour += 1
                    continue
                if own > 0 and scores[j] >= ratio * own:
                    out.dropped_score += 1
                    continue
            pick = (j, rank)
            break
        if pick is None:
            others = [j for j in range(n) if j != i and pairs.positives[j] != pairs.positives[i]
                      and not _is_neighbour(pairs.group[i], pairs.group[j], window)]
            j = int(rng.choice(others)) if others else (i + 1) % n
            pick = (j, depth + 1)
            out.fallback += 1
        out.negatives.append(pairs.positives[pick[0]])
        out.rank.append(pick[1])
    return out


def consistency_filter(mining: NegativeMining, top_k: int = 2) -> np.ndarray:
    """Indices of the pairs whose own positive ranks in the miner's first ``top_k`` of the pool.

    E5's consistency filter keeps a pair when a model ranks its positive in the top 2 among a
    million random passages; here the scorer is the miner (BM25) and the pool is every positive of
    the pair set. A pair whose anchor shares no term with its positive ranks last and is dropped.
    """
    if top_k < 1:
        raise ValueError(f"top_k must be at least 1, got {top_k}")
    return np.flatnonzero(np.asarray(mining.own_rank) < top_k)


# --------------------------------------------------------------------------------------------
# Budgets and intervals
# --------------------------------------------------------------------------------------------

def examples_seen_budget(examples: int, batch_sizes: Sequence[int]) -> dict[int, int]:
    """Optimiser steps per batch size so that every arm sees exactly ``examples`` pairs.

    Each batch size must divide ``examples`` (an arm that saw more or fewer pairs would not have
    the same budget).
    """
    steps = {}
    for b in batch_sizes:
        if b < 2:
            raise ValueError(f"in-batch negatives need a batch of at least 2, got {b}")
        if examples % b:
            raise ValueError(f"batch size {b} does not divide the budget of {examples} pairs")
        steps[int(b)] = examples // b
    return steps


def _as_matrix(runs: Sequence[dict[str, float]], queries: Sequence[str]) -> np.ndarray:
    return np.array([[run[q] for q in queries] for run in runs], dtype=np.float64)


def query_difference(a_runs: Sequence[dict[str, float]], b_runs: Sequence[dict[str, float]], n_boot: int = 1000,
                     seed: int = 0):
    """Mean per-query score of A minus B, averaged over seeds, with the wider of two intervals.

    ``a_runs``/``b_runs``: one ``{query: score}`` per seed (``b_runs`` may hold one run, a
    deterministic baseline shared by every seed). Intervals: a paired t-interval over the per-seed
    differences and a paired bootstrap over queries of the seed-averaged per-query differences;
    the wider one is returned. With one seed only the query interval exists (seed noise unmeasured).
    """
    from embrepro import stats

    a_runs, b_runs = stats.pair_seeds(a_runs, b_runs)
    queries = sorted(a_runs[0])
    a = _as_matrix(a_runs, queries)
    b = _as_matrix(b_runs, queries)
    over_queries = stats.paired_bootstrap(a.mean(axis=0), b.mean(axis=0), n_boot=n_boot, seed=seed)
    # seed noise cannot be estimated from one seed: the query interval alone
    return stats.seeds_and_items(a.mean(axis=1) - b.mean(axis=1), over_queries, one_seed="items")


def trend_interval(runs_by_x: dict[float, Sequence[dict[str, float]]], n_boot: int = 1000, seed: int = 0):
    """Least-squares slope of the mean score against ``log2(x)`` (points per doubling), with an interval.

    ``runs_by_x``: for each x (a batch size), one ``{query: score}`` per seed. Intervals: a
    t-interval over seeds of the per-seed slopes and a bootstrap over queries of the slope of the
    seed-averaged means; the wider one is returned (with one seed, the query interval alone).
    """
    from embrepro import stats

    xs = sorted(runs_by_x)
    if len(xs) < 2:
        raise ValueError("a slope needs at least two batch sizes")
    queries = sorted(runs_by_x[xs[0]][0])
    cube = np.stack([_as_matrix(runs_by_x[x], queries) for x in xs])  # (x, seed, query)
    t = np.log2(np.asarray(xs, dtype=np.float64))
    t = t - t.mean()

    def slope(y: np.ndarray) -> float:
        return float(np.dot(t, y - y.mean()) / np.dot(t, t))

    seed_mean = cube.mean(axis=1)  # (x, query)
    over_queries = stats.bootstrap(lambda idx: slope(seed_mean[:, idx].mean(axis=1)), len(queries),
                                   n_boot=n_boot, seed=seed, what="the slope per doubling")
    per_seed = [slope(cube[:, s, :].mean(axis=1)) for s in range(cube.shape[1])]
    return stats.seeds_and_items(per_seed, over_queries, one_seed="items")  # one seed: the query interval alone
