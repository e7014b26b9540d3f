import numpy as np
import pytest

from embrepro.cooccurrence import (Vocabulary, build_vocabulary, cooccurrence_matrix, count_corpus, encode,
                                   pmi, ppmi_svd)


class ListCorpus:
    def __init__(self, sentences):
        self.sentences = sentences

    def sentences_iter(self):
        yield from self.sentences


def test_vocabulary_keeps_the_most_frequent_words_ties_by_word():
    vocab = build_vocabulary([["b", "a", "c", "a"], ["c", "b", "d"]], size=3)
    assert vocab.words == ["a", "b", "c"]  # a, b and c twice each: alphabetical among equals
    assert vocab.counts.tolist() == [2, 2, 2]
    assert build_vocabulary([["x", "x", "y"]], size=5, min_count=2).words == ["x"]


def test_encode_marks_unknown_words():
    vocab = Vocabulary(["a", "b"], np.array([3, 1]))
    assert encode([["a", "z"], ["b", "a"]], vocab).tolist() == [0, -1, 1, 0]


def test_cooccurrence_counts_a_hand_computed_stream():
    # stream a b a c, window 2: distance-1 pairs (a,b) (b,a) (a,c); distance-2 pairs (a,a) (b,c)
    X = cooccurrence_matrix(np.array([0, 1, 0, 2]), 3, window=2).toarray()
    expected = np.array([[1.0, 2.0, 1.0],   # a-a: 1/2 counted in both directions
                         [2.0, 0.0, 0.5],
                         [1.0, 0.5, 0.0]])
    np.testing.assert_allclose(X, expected)
    unweighted = cooccurrence_matrix(np.array([0, 1, 0, 2]), 3, window=2, distance_weighting=False).toarray()
    np.testing.assert_allclose(unweighted, [[2, 2, 1], [2, 0, 1], [1, 1, 0]])
    window1 = cooccurrence_matrix(np.array([0, 1, 0, 2]), 3, window=1).toarray()
    np.testing.assert_allclose(window1, [[0, 2, 1], [2, 0, 0], [1, 0, 0]])


def test_unknown_words_are_dropped_before_the_window_as_glove_does():
    # "a ? b" with window 1: once the unknown word is gone, a and b are neighbours
    X = cooccurrence_matrix(np.array([0, -1, 1]), 2, window=1).toarray()
    np.testing.assert_allclose(X, [[0, 1], [1, 0]])


def test_cooccurrence_rejects_bad_input():
    with pytest.raises(ValueError):
        cooccurrence_matrix(np.array([0, 1]), 2, window=0)
    with pytest.raises(ValueError):
        cooccurrence_matrix(np.array([0, 5]), 2, window=1)


def test_count_corpus_reads_a_stream_across_sentences():
    corpus = ListCorpus([["a", "b"], ["a", "c", "zz"]])
    counts = count_corpus(corpus, vocab_size=3, window=1)
    assert counts.words == ["a", "b", "c"] and counts.tokens == 5
    # stream a b a c (zz is the 4th most frequent word, out of the vocabulary): b-a crosses a sentence end
    np.testing.assert_allclose(counts.matrix.toarray(), [[0, 2, 1], [2, 0, 0], [1, 0, 0]])


def test_pmi_matches_a_hand_computed_matrix():
    X = np.array([[4.0, 2.0], [2.0, 2.0]])  # total 10, row and column sums 6 and 4
    P = pmi(X).toarray()
    np.testing.assert_allclose(P, np.log([[4 * 10 / 36, 2 * 10 / 24], [2 * 10 / 24, 2 * 10 / 16]]))
    positive = pmi(X, positive=True)
    assert positive.nnz == 2  # the two negative cells are dropped
    np.testing.assert_allclose(positive.toarray(), [[np.log(40 / 36), 0], [0, np.log(1.25)]])
    # context smoothing: P(c) proportional to colsum ** 0.5
    p_c = np.sqrt([6.0, 4.0]) / np.sqrt([6.0, 4.0]).sum()
    smoothed = pmi(X, context_smoothing=0.5).toarray()
    np.testing.assert_allclose(smoothed[0, 1], np.log(0.2 / (0.6 * p_c[1])))


def test_pmi_leaves_zero_counts_out():
    P = pmi(np.array([[0.0, 1.0], [1.0, 3.0]]))
    assert P.nnz == 3 and P[0, 0] == 0.0


def test_ppmi_svd_inner_products_recover_a_positive_semidefinite_ppmi():
    X = np.array([[4.0, 2.0], [2.0, 2.0]])  # its PPMI is diagonal and positive
    W = ppmi_svd(X, dim=2, context_smoothing=1.0, eig=0.5)
    np.testing.assert_allclose(W @ W.T, [[np.log(40 / 36), 0], [0, np.log(1.25)]], atol=1e-10)


def test_ppmi_svd_is_the_truncated_svd_of_the_ppmi_matrix():
    rng = np.random.default_rng(0)
    counts = rng.poisson(3.0, size=(30, 30)).astype(float)
    counts = counts + counts.T
    M = pmi(counts, context_smoothing=0.75, positive=True).toarray()
    U, S, _ = np.linalg.svd(M)
    W = ppmi_svd(counts, dim=4, context_smoothing=0.75, eig=1.0, seed=1)
    np.testing.assert_allclose(W @ W.T, (U[:, :4] * S[:4] ** 2) @ U[:, :4].T, atol=1e-3)  # randomised SVD
    assert W.shape == (30, 4)
    with pytest.raises(ValueError):
        ppmi_svd(counts, dim=31)
