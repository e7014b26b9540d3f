"""Retrofitting word vectors to a semantic lexicon (Faruqui et al. 2015), and a random control.

Retrofitting keeps every word close to its original vector :math:`\\hat q_i` while pulling it
towards the words a lexicon links it to. It minimises

.. math::

    \\Psi(Q) = \\sum_i \\Big[ \\alpha_i \\lVert q_i - \\hat q_i \\rVert^2
               + \\sum_{j \\in N(i)} \\beta_{ij} \\lVert q_i - q_j \\rVert^2 \\Big]

by repeating, for every word with at least one neighbour in the vocabulary, the closed-form update

.. math::

    q_i \\leftarrow \\frac{\\alpha_i \\hat q_i + \\sum_{j \\in N(i)} \\beta_{ij} q_j}
                          {\\alpha_i + \\sum_{j \\in N(i)} \\beta_{ij}}.

The paper and its code (``mfaruqui/retrofitting``, ``retrofit.py``) use :math:`\\alpha_i = 1`,
:math:`\\beta_{ij} = 1/\\deg(i)` and 10 iterations, so that each update puts a word halfway
between its original vector and the mean of its neighbours' current vectors:
``q_i = (deg(i) * q_hat_i + sum_j q_j) / (2 * deg(i))``. Words with no neighbour in the
vocabulary never move.

Two implementation details follow the official code: the input vectors are scaled to unit
length first, and a word's neighbours are those listed on its own line of the lexicon (the graph
is directed; an edge ``i -> j`` moves ``i`` towards ``j``), restricted to the vocabulary. The one
difference: :func:`retrofit` updates all words at once from the previous iteration's vectors
(a Jacobi sweep, one sparse matrix product), while the official script updates words one after
another in place (a Gauss-Seidel sweep). Both are contractions with factor at most 1/2 towards the
same fixed point, so after 10 iterations they agree to about 1e-3; :func:`retrofit_sequential`
is a line-by-line port of the official loop, kept for that comparison.

:func:`random_rewire` builds the control: a lexicon graph over the same words with every word's
out-degree and in-degree kept, but the edges shuffled, so that it smooths exactly as much as the
real lexicon but carries no meaning.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import sparse


@dataclass
class LexiconGraph:
    """A lexicon restricted to a vocabulary: ``adjacency[i, j] = 1`` when word ``j`` is a neighbour of ``i``.

    Row ``i`` of the adjacency is the neighbour list of ``words[i]``, which is also row ``i`` of
    the vector matrix that is retrofitted. No self-loops, no repeated edges.
    """

    words: list[str]
    adjacency: sparse.csr_matrix

    @classmethod
    def from_lexicon(cls, lexicon: Mapping[str, Iterable[str]], vocabulary: Sequence[str]) -> "LexiconGraph":
        """Keep the edges whose two words are both in ``vocabulary`` (as the official code does)."""
        index = {w: i for i, w in enumerate(vocabulary)}
        rows, cols = [], []
        for word, neighbours in lexicon.items():
            i = index.get(word)
            if i is None:
                continue
            for j in {index[n] for n in neighbours if n in index}:
                if j != i:
                    rows.append(i)
                    cols.append(j)
        n = len(vocabulary)
        adjacency = sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n))
        return cls(list(vocabulary), adjacency)

    @property
    def degree(self) -> np.ndarray:
        """Out-degree of every word: how many neighbours pull it."""
        return np.asarray(self.adjacency.sum(axis=1)).ravel()

    @property
    def in_degree(self) -> np.ndarray:
        return np.asarray(self.adjacency.sum(axis=0)).ravel()

    @property
    def n_edges(self) -> int:
        return int(self.adjacency.nnz)

    @property
    def moved(self) -> np.ndarray:
        """Boolean mask of the words that retrofitting moves (those with at least one neighbour)."""
        return self.degree > 0

    def neighbours(self, word: str) -> list[str]:
        i = self.words.index(word)
        return [self.words[j] for j in self.adjacency.indices[self.adjacency.indptr[i]:self.adjacency.indptr[i + 1]]]

    def edges(self) -> tuple[np.ndarray, np.ndarray]:
        """Sources and targets of all edges, as two integer arrays."""
        coo = self.adjacency.tocoo()
        return coo.row.astype(np.int64), coo.col.astype(np.int64)


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """Each row scaled to unit length (zero rows stay zero)."""
    vectors = np.asarray(vectors, dtype=np.float64)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)


def retrofit(vectors: np.ndarray, graph: LexiconGraph, iterations: int = 10, alpha: float = 1.0,
             normalize: bool = True) -> np.ndarray:
    """Retrofitted copy of ``vectors`` (rows in ``graph.words`` order); the input is not changed.

    With ``beta_ij = 1 / deg(i)`` the neighbours' weights sum to one, so each iteration sets
    ``q_i = (alpha * q_hat_i + mean of q_j over neighbours j) / (alpha + 1)`` for every word with
    neighbours, all at once. Words without neighbours keep ``q_hat_i``.
    """
    if iterations < 0:
        raise ValueError(f"iterations must be >= 0, not {iterations}")
    q_hat = unit_rows(vectors) if normalize else np.asarray(vectors, dtype=np.float64).copy()
    if q_hat.shape[0] != len(graph.words):
        raise ValueError(f"{q_hat.shape[0]} vectors for a graph over {len(graph.words)} words")
    degree = graph.degree
    moved = np.flatnonzero(degree > 0)
    # Row-normalised adjacency, kept only for the words that move (in a large vocabulary such as
    # GloVe's 400,000 words most never move): (mean_neighbours @ Q)[k] is the mean of the vectors
    # of the neighbours of word moved[k].
    mean_neighbours = sparse.diags(1.0 / degree[moved]) @ graph.adjacency[moved]
    q = q_hat.copy()
    anchor = alpha * q_hat[moved]
    for _ in range(iterations):
        # the right-hand side is computed in full from the previous sweep before any row is replaced
        q[moved] = (anchor + mean_neighbours @ q) / (alpha + 1.0)
    return q


def retrofit_sequential(word_vectors: Mapping[str, np.ndarray], lexicon: Mapping[str, Iterable[str]],
                        iterations: int = 10) -> dict[str, np.ndarray]:
    """A port of the official ``retrofit.py`` loop (in-place, word by word), for comparison.

    ``word_vectors`` should already be unit length, as the official reader makes them.
    """
    new = {w: np.array(v, dtype=np.float64) for w, v in word_vectors.items()}
    vocab = set(new)
    loop_vocab = [w for w in lexicon if w in vocab]
    for _ in range(iterations):
        for word in loop_vocab:
            neighbours = [n for n in dict.fromkeys(lexicon[word]) if n in vocab]
            if not neighbours:
                continue
            vec = len(neighbours) * np.asarray(word_vectors[word], dtype=np.float64)
            for n in neighbours:
                vec = vec + new[n]
            new[word] = vec / (2 * len(neighbours))
    return new


def random_rewire(graph: LexiconGraph, seed: int, max_rounds: int = 1000) -> LexiconGraph:
    """A random graph over the same words with every out-degree and in-degree unchanged.

    The targets of all edges are shuffled (a directed configuration model); edges that became
    self-loops or repeats are then repaired by swapping their target with that of a random other
    edge, which keeps both degree sequences, until none is left.
    """
    rng = np.random.default_rng(seed)
    src, dst = graph.edges()
    n_words, n_edges = len(graph.words), len(src)
    dst = dst[rng.permutation(n_edges)]
    for _ in range(max_rounds):
        keys = src * n_words + dst
        _, first = np.unique(keys, return_index=True)
        repeated = np.ones(n_edges, dtype=bool)
        repeated[first] = False
        bad = np.flatnonzero((src == dst) | repeated)
        if len(bad) == 0:
            break
        for i, j in zip(bad, rng.integers(0, n_edges, len(bad))):
            dst[i], dst[j] = dst[j], dst[i]
    else:
        raise RuntimeError(f"could not remove self-loops and repeated edges in {max_rounds} rounds")
    adjacency = sparse.csr_matrix((np.ones(n_edges), (src, dst)), shape=(n_words, n_words))
    return LexiconGraph(list(graph.words), adjacency)


def content_effect(gain, over_random, margin: float):
    """Per-cell effect of the claim "the gain comes from the lexicon's content", for a sign test.

    ``gain`` is the change in a score from retrofitting to the real lexicon; ``over_random`` is the
    real lexicon's score minus the mean score of its random twins (the same change minus the twins'
    change); ``margin`` (>= 0) is how much the real lexicon must beat its twins by. The effect is
    ``min(gain, over_random - margin)``: positive only when retrofitting helps *and* beats the random
    lexicons by more than the margin, negative when either fails. A cell where retrofitting hurts
    never counts for the claim, however badly the random twins do.
    """
    if not margin >= 0:
        raise ValueError(f"the margin must be >= 0, got {margin}")
    gain, over_random = np.asarray(gain, dtype=np.float64), np.asarray(over_random, dtype=np.float64)
    if gain.shape != over_random.shape:
        raise ValueError(f"gain and over_random must be aligned, got shapes {gain.shape} and {over_random.shape}")
    return np.minimum(gain, over_random - margin)
