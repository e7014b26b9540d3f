import numpy as np
import pytest
from gensim.models import KeyedVectors

from embrepro import data, evaluation
from embrepro.models import AveragedWordVectors


def test_cosine_rows_handles_zero_vectors():
    a = np.array([[1.0, 0.0], [0.0, 0.0], [1.0, 1.0]])
    b = np.array([[1.0, 0.0], [1.0, 0.0], [-1.0, -1.0]])
    assert evaluation.cosine_rows(a, b) == pytest.approx([1.0, 0.0, -1.0])


def test_sts_evaluation_rewards_an_encoder_that_knows_the_gold_scores():
    scores = data.load_stsb("test").scores[:300]
    pairs = data.SentencePairs("demo", "test", [f"a{i}" for i in range(300)], [f"b{i}" for i in range(300)], scores)
    # an "oracle": sentence a at angle 0, sentence b at an angle that shrinks as the gold score grows
    angle = {f"b{i}": (5 - s) / 5 * np.pi / 2 for i, s in enumerate(scores)}

    def encode(texts):
        return np.array([[np.cos(angle.get(t, 0.0)), np.sin(angle.get(t, 0.0))] for t in texts])

    result = evaluation.evaluate_sts(encode, pairs)
    assert result.spearman == pytest.approx(100.0) and result.pairs == 300

    rng = np.random.default_rng(0)
    noise = evaluation.evaluate_sts(lambda texts: rng.normal(size=(len(texts), 8)), pairs)
    assert abs(noise.spearman) < 20


def small_vectors(words: dict[str, list[float]]) -> KeyedVectors:
    kv = KeyedVectors(vector_size=len(next(iter(words.values()))))
    kv.add_vectors(list(words), np.array(list(words.values()), dtype=np.float32))
    return kv


def test_word_similarity_reports_coverage():
    kv = small_vectors({"love": [1, 0, 0], "sex": [0.9, 0.1, 0], "tiger": [0, 1, 0], "cat": [0, 0.9, 0.2]})
    result = evaluation.word_similarity(kv, "ws353")
    assert 0 < result["coverage"] < 5  # only the few pairs built from these four words
    assert result["pairs"] == 353


def test_analogy_accuracy_finds_exact_offsets(tmp_path, monkeypatch):
    # capitals as country + offset: every question of the form a:b::c:d is answerable exactly
    countries = ["greece", "norway", "france", "spain"]
    capitals = ["athens", "oslo", "paris", "madrid"]
    rng = np.random.default_rng(1)
    offset = rng.normal(size=16)
    words = {c: rng.normal(size=16) for c in countries}
    words.update({cap: words[c] + offset for c, cap in zip(countries, capitals)})
    kv = small_vectors({w: list(v) for w, v in words.items()})
    result = evaluation.analogy_accuracy(kv, "google", restrict_vocab=100)
    assert result["semantic"] == 100.0
    assert result["questions_seen"] >= 12  # at least the 4 * 3 ordered pairs of capital-common-countries
    assert result["coverage"] < 1


def test_averaged_word_vectors_average_known_words_and_zero_the_rest():
    kv = small_vectors({"red": [1, 0], "car": [0, 1]})
    enc = AveragedWordVectors(kv)
    out = enc.encode(["A red car.", "nothing known here"])
    assert out[0] == pytest.approx([0.5, 0.5])
    assert out[1] == pytest.approx([0.0, 0.0])
    assert enc.coverage == pytest.approx(100 * 2 / 6)
