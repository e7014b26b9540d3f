"""Word-pair cosines and the paired bootstrap of Spearman correlations."""

import numpy as np
from gensim.models import KeyedVectors
from scipy.stats import rankdata, spearmanr

from embrepro import data, evaluation, stats


def test_resample_ranks_equal_ranking_the_resampled_list_with_ties():
    rng = np.random.default_rng(0)
    values = rng.integers(0, 6, 40).astype(float)  # many ties, as in gold ratings
    for _ in range(5):
        idx = rng.integers(0, 40, 40)
        counts = np.bincount(idx, minlength=40)[None, :]
        ranks = stats._resample_ranks(counts, values)[0]
        np.testing.assert_allclose(ranks[idx], rankdata(values[idx]))


def test_bootstrap_columns_are_paired_and_centred_on_the_full_sample():
    rng = np.random.default_rng(1)
    gold = rng.normal(size=300)
    good = gold + rng.normal(scale=0.5, size=300)
    bad = gold + rng.normal(scale=2.0, size=300)
    boot = stats.bootstrap_spearman([good, bad, good], gold, n_boot=400, seed=3)
    assert boot.shape == (400, 3)
    np.testing.assert_allclose(boot[:, 0], boot[:, 2])  # same system, same resamples
    assert abs(boot[:, 0].mean() - 100 * spearmanr(good, gold).statistic) < 1.0
    assert (boot[:, 0] > boot[:, 1]).mean() > 0.99
    again = stats.bootstrap_spearman([good, bad, good], gold, n_boot=400, seed=3)
    np.testing.assert_array_equal(boot, again)


def test_word_pair_cosines_agree_with_gensims_word_similarity():
    pairs = data.load_word_similarity("ws353")
    words = sorted({w for p in pairs.pairs for w in p})[::2]  # about half the words: partial coverage
    vectors = KeyedVectors(8)
    vectors.add_vectors(words, np.random.default_rng(4).normal(size=(len(words), 8)))
    ours = evaluation.word_pair_cosines(vectors, "ws353")
    gensim = evaluation.word_similarity(vectors, "ws353")
    assert abs(ours.spearman - gensim["spearman"]) < 1e-4
    assert abs(ours.coverage - gensim["coverage"]) < 1e-9
    assert 0 < len(ours.pairs) < len(pairs) and ours.total == len(pairs)
