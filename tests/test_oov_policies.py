"""Word similarity under the three out-of-vocabulary policies of Bojanowski et al. (2017)."""

import numpy as np
import pytest
from gensim.models import FastText, KeyedVectors

from embrepro import data, evaluation


def keyed(words: dict[str, list[float]]) -> KeyedVectors:
    kv = KeyedVectors(vector_size=len(next(iter(words.values()))))
    kv.add_vectors(list(words), np.array(list(words.values()), dtype=np.float32))
    return kv


@pytest.fixture
def four_pairs(monkeypatch):
    # gold rises 1..4; "xylo" has no vector
    pairs = data.WordPairs("toy", [("a", "b"), ("a", "c"), ("a", "xylo"), ("b", "c")], [1.0, 2.0, 3.0, 4.0])
    monkeypatch.setattr(evaluation, "load_word_similarity", lambda name: pairs)
    return pairs


def test_skip_and_null_policies_give_the_hand_computed_spearman(four_pairs):
    # cosines: (a,b) -0.98, (a,c) 0.71, (b,c) -0.55
    kv = keyed({"a": [1.0, 0.0], "b": [-1.0, 0.2], "c": [1.0, 1.0]})
    skip = evaluation.word_similarity_oov(kv, "toy", "skip")
    # ranks of the cosines 1, 3, 2 against gold 1, 2, 3: rho = 1 - 6 * 2 / 24 = 0.5
    assert skip["spearman"] == pytest.approx(50.0)
    assert skip["scored"] == 3 and skip["pairs"] == 4
    null = evaluation.word_similarity_oov(kv, "toy", "null")
    # the OOV pair scores cosine 0: ranks 1, 4, 3, 2 against 1, 2, 3, 4: rho = 1 - 6 * 8 / 60 = 0.2
    assert null["spearman"] == pytest.approx(20.0)
    assert null["scored"] == 4
    assert skip["oov_pairs"] == null["oov_pairs"] == pytest.approx(25.0)
    assert skip["oov_words"] == pytest.approx(25.0)  # 1 of the 4 distinct words


def test_word2vec_vectors_cannot_use_ngram_vectors(four_pairs):
    kv = keyed({"a": [1.0, 0.0], "b": [-1.0, 0.2], "c": [1.0, 1.0]})
    with pytest.raises(ValueError, match="ngram"):
        evaluation.word_similarity_oov(kv, "toy", "ngram")
    with pytest.raises(ValueError, match="policy"):
        evaluation.word_similarity_oov(kv, "toy", "drop")


def test_fasttext_oov_words_get_ngram_vectors_only_under_the_ngram_policy(monkeypatch):
    sentences = [["walk", "walked", "walking", "talk", "talked", "talking", "home", "house"]] * 30
    model = FastText(sentences, vector_size=16, min_count=1, min_n=3, max_n=5, bucket=2000, epochs=2,
                     workers=1, seed=0)
    wv = model.wv
    assert "walks" in wv and "walks" not in wv.key_to_index  # fastText answers for any word
    pairs = data.WordPairs("toy", [("walk", "walks"), ("walk", "talked"), ("home", "house"), ("talk", "homes")],
                           [9.0, 3.0, 7.0, 1.0])
    monkeypatch.setattr(evaluation, "load_word_similarity", lambda name: pairs)

    null = evaluation.word_similarity_oov(wv, "toy", "null")
    ngram = evaluation.word_similarity_oov(wv, "toy", "ngram")
    skip = evaluation.word_similarity_oov(wv, "toy", "skip")
    assert null["oov_pairs"] == ngram["oov_pairs"] == pytest.approx(50.0)
    assert skip["scored"] == 2 and null["scored"] == ngram["scored"] == 4

    def cos(u, v):
        return float(u @ v / np.linalg.norm(u) / np.linalg.norm(v))

    by_ngrams = [cos(wv[a], wv[b]) for a, b in pairs.pairs]  # wv[...] builds OOV vectors from n-grams
    by_null = [cos(wv[a], wv[b]) if b in wv.key_to_index else 0.0 for a, b in pairs.pairs]
    from scipy.stats import spearmanr

    assert ngram["spearman"] == pytest.approx(100 * spearmanr(by_ngrams, pairs.scores).statistic)
    assert null["spearman"] == pytest.approx(100 * spearmanr(by_null, pairs.scores).statistic)


def test_skip_policy_agrees_with_gensims_evaluate_word_pairs():
    pairs = data.load_word_similarity("ws353")
    words = sorted({w for p in pairs.pairs for w in p})[::2]  # half the words: many pairs are OOV
    rng = np.random.default_rng(0)
    kv = keyed({w: list(rng.normal(size=8)) for w in words})
    ours = evaluation.word_similarity_oov(kv, "ws353", "skip")
    gensim_way = evaluation.word_similarity(kv, "ws353")
    assert ours["spearman"] == pytest.approx(gensim_way["spearman"])
    assert 100 - ours["oov_pairs"] == pytest.approx(gensim_way["coverage"])
    assert 20 < ours["oov_pairs"] < 95
