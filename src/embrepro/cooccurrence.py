"""Word co-occurrence counts, PMI and PPMI, and PPMI-SVD word vectors, with numpy and scipy.sparse.

The counting follows GloVe's ``cooccur`` tool, which the official RAND-WALK code
(``PrincetonML/SemanticVector``) uses to build its input:

* words outside the vocabulary are dropped *before* windows are formed, so distances are counted
  in vocabulary words;
* a pair of words ``k`` positions apart (``1 <= k <= window``) adds ``1/k`` to the count when
  ``distance_weighting`` is on (GloVe's default), else 1;
* counts are symmetric: each pair adds to ``X[w, c]`` and to ``X[c, w]`` (so a word meeting itself
  at distance ``k`` adds ``2/k`` to the diagonal).

A typical use::

    counts = count_corpus(data.gutenberg_corpus(2_000_000), vocab_size=10_000, window=10)
    counts.matrix           # scipy.sparse.csr_matrix, shape (10000, 10000), float64
    P = pmi(counts.matrix)  # PMI on the non-zero cells (zero cells have PMI -inf and are left out)
    W = ppmi_svd(counts.matrix, dim=100)   # one row per vocabulary word

Everything here is deterministic except :func:`ppmi_svd`, whose randomised SVD takes a seed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp


@dataclass
class Vocabulary:
    """The most frequent words of a corpus, most frequent first, with their corpus counts."""

    words: list[str]
    counts: np.ndarray  # int64, counts[i] is how often words[i] occurs in the corpus

    def __post_init__(self):
        self.index = {w: i for i, w in enumerate(self.words)}

    def __len__(self) -> int:
        return len(self.words)


def build_vocabulary(sentences: Iterable[Sequence[str]], size: int, min_count: int = 1) -> Vocabulary:
    """The ``size`` most frequent words seen at least ``min_count`` times (ties broken by word)."""
    counter: Counter = Counter()
    for tokens in sentences:
        counter.update(tokens)
    ranked = sorted(((c, w) for w, c in counter.items() if c >= min_count), key=lambda cw: (-cw[0], cw[1]))
    ranked = ranked[:size]
    return Vocabulary([w for _, w in ranked], np.array([c for c, _ in ranked], dtype=np.int64))


def encode(sentences: Iterable[Sequence[str]], vocabulary: Vocabulary) -> np.ndarray:
    """The token stream as vocabulary ids (int32), with out-of-vocabulary tokens as -1.

    Sentences are concatenated into one stream, as text8 is one stream: windows may cross
    sentence boundaries.
    """
    index = vocabulary.index
    return np.fromiter((index.get(t, -1) for tokens in sentences for t in tokens), dtype=np.int32)


def cooccurrence_matrix(ids: np.ndarray, vocab_size: int, window: int, *,
                        distance_weighting: bool = True) -> sp.csr_matrix:
    """Symmetric co-occurrence counts ``X`` (``vocab_size`` x ``vocab_size``) of an id stream.

    ``ids`` is the output of :func:`encode`; ids below 0 (out of vocabulary) are removed first.
    See the module docstring for the counting rule.
    """
    if window < 1:
        raise ValueError(f"window must be at least 1, not {window}")
    ids = np.asarray(ids)
    ids = ids[ids >= 0].astype(np.int32, copy=False)
    if len(ids) and ids.max() >= vocab_size:
        raise ValueError(f"an id {ids.max()} is outside the vocabulary of size {vocab_size}")
    shape = (vocab_size, vocab_size)
    total = sp.csr_matrix(shape, dtype=np.float64)
    for k in range(1, window + 1):
        if k >= len(ids):
            break
        left, right = ids[:-k], ids[k:]
        weight = 1.0 / k if distance_weighting else 1.0
        values = np.full(len(left), weight, dtype=np.float64)
        # duplicate (row, col) entries are summed by the COO -> CSR conversion
        total = total + sp.coo_matrix((values, (left, right)), shape=shape).tocsr()
    total = (total + total.T).tocsr()
    total.sum_duplicates()
    total.eliminate_zeros()
    return total


@dataclass
class Cooccurrence:
    """Co-occurrence counts of a corpus: the vocabulary, the counts and how they were made."""

    vocabulary: Vocabulary
    matrix: sp.csr_matrix
    window: int
    distance_weighting: bool
    tokens: int  # tokens of the corpus read, in and out of the vocabulary

    @property
    def words(self) -> list[str]:
        return self.vocabulary.words


def count_corpus(corpus, vocab_size: int, window: int, *, distance_weighting: bool = True,
                 min_count: int = 1) -> Cooccurrence:
    """Vocabulary and co-occurrence counts of a corpus with a ``sentences_iter()`` method.

    ``corpus`` is typically :func:`embrepro.data.gutenberg_corpus`'s result. The corpus is read
    twice (vocabulary, then ids) so that it never has to sit in memory as strings.
    """
    vocabulary = build_vocabulary(corpus.sentences_iter(), vocab_size, min_count)
    tokens = 0

    def counted():
        nonlocal tokens
        for sentence in corpus.sentences_iter():
            tokens += len(sentence)
            yield sentence

    ids = encode(counted(), vocabulary)
    matrix = cooccurrence_matrix(ids, len(vocabulary), window, distance_weighting=distance_weighting)
    return Cooccurrence(vocabulary, matrix, window, distance_weighting, tokens)


def pmi(X: sp.spmatrix, *, context_smoothing: float = 1.0, positive: bool = False) -> sp.csr_matrix:
    """Pointwise mutual information of the non-zero cells of a count matrix.

    ``PMI(w, c) = log( X[w, c] * sum(X) / (X[w, :].sum() * X[:, c].sum()) )`` with natural logs.
    ``context_smoothing`` (``alpha``) raises the context counts to a power before normalising them,
    ``P_alpha(c) = X[:, c].sum()**alpha / sum_c' X[:, c'].sum()**alpha`` (Levy, Goldberg and
    Dagan 2015; 1.0 is plain PMI). ``positive=True`` gives PPMI, ``max(PMI, 0)``, with the zeros
    removed from the sparse structure. Zero counts (PMI = -inf) are not stored; for plain PMI the
    result has exactly the sparsity pattern of ``X`` (a PMI of exactly 0 is stored as 0).
    """
    X = sp.csr_matrix(X, dtype=np.float64)
    X.eliminate_zeros()
    total = X.sum()
    if total <= 0:
        raise ValueError("the count matrix is empty")
    row = np.asarray(X.sum(axis=1)).ravel()
    col = np.asarray(X.sum(axis=0)).ravel()
    p_word = row / total
    smoothed = col ** context_smoothing
    p_context = smoothed / smoothed.sum()
    coo = X.tocoo()
    values = np.log(coo.data / total) - np.log(p_word[coo.row]) - np.log(p_context[coo.col])
    if positive:
        values = np.maximum(values, 0.0)
    out = sp.csr_matrix((values, (coo.row, coo.col)), shape=X.shape)
    if positive:
        out.eliminate_zeros()
    return out


def ppmi_svd(X: sp.spmatrix, dim: int, *, context_smoothing: float = 0.75, eig: float = 0.5,
             seed: int = 0, n_iter: int = 7) -> np.ndarray:
    """Word vectors ``U_d S_d**eig`` from a rank-``dim`` SVD of the PPMI matrix of counts ``X``.

    ``eig = 0.5`` splits the singular values evenly between words and contexts, so that inner
    products of the vectors approximate PPMI where the matrix is positive semi-definite; ``eig = 0``
    keeps only the singular vectors (Levy, Goldberg and Dagan 2015 found both work well). The
    truncated SVD is scikit-learn's randomised one, seeded for repeatability.
    """
    from sklearn.utils.extmath import randomized_svd

    M = pmi(X, context_smoothing=context_smoothing, positive=True)
    if not 1 <= dim <= min(M.shape):
        raise ValueError(f"dim must be between 1 and {min(M.shape)}, not {dim}")
    U, S, _ = randomized_svd(M, n_components=dim, n_iter=n_iter, random_state=seed)
    return U * S ** eig
