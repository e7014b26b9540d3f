"""Tests of embrepro.siamese: vocabulary, pooling outputs, the classifier's features, training."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sentence_transformers")

from embrepro import siamese  # noqa: E402


class _Vectors:
    """A stand-in for gensim KeyedVectors with three 2-d words."""

    vector_size = 2

    def __init__(self):
        self.rows = {"cat": [1.0, 0.0], "dog": [0.0, 1.0], "sat": [3.0, 5.0]}
        self.key_to_index = {w: i for i, w in enumerate(self.rows)}

    def __getitem__(self, word):
        return np.asarray(self.rows[word], dtype=np.float32)


def _tiny():
    return siamese.glove_vocabulary(_Vectors(), ["The cat sat.", "A DOG, a cat!"])


def test_tokens_strip_punctuation_and_lower_case():
    assert siamese.tokens("A DOG, a cat! ...") == ["a", "dog", "a", "cat"]


def test_vocabulary_keeps_known_words_in_order_with_a_zero_pad_row():
    vocab, matrix = _tiny()
    assert vocab == ["<pad>", "cat", "sat", "dog"]  # "the" and "a" are unknown to the vectors
    np.testing.assert_array_equal(matrix, [[0, 0], [1, 0], [3, 5], [0, 1]])


def test_pooling_outputs_of_the_untrained_encoder():
    vocab, matrix = _tiny()
    texts = ["cat sat", "dog", "sat cat dog"]
    mean = siamese.encode(siamese.build_encoder(vocab, matrix, pooling="mean"), texts)
    np.testing.assert_allclose(mean, [[2.0, 2.5], [0.0, 1.0], [4 / 3, 2.0]], rtol=1e-6)
    mx = siamese.encode(siamese.build_encoder(vocab, matrix, pooling="max"), texts)
    np.testing.assert_allclose(mx, [[3, 5], [0, 1], [3, 5]])
    first = siamese.encode(siamese.build_encoder(vocab, matrix, pooling="cls"), texts)
    np.testing.assert_allclose(first, [[1, 0], [0, 1], [3, 5]])  # the first word's vector


def test_cls_pooling_after_the_lstm_is_its_first_position():
    vocab, matrix = _tiny()
    cls_model = siamese.build_encoder(vocab, matrix, hidden=3, pooling="cls", seed=1)
    # The same LSTM weights (same seed) followed by pooling "mean" over a one-word sentence give
    # the first position too: a one-word sentence has only that position.
    mean_model = siamese.build_encoder(vocab, matrix, hidden=3, pooling="mean", seed=1)
    one, two = siamese.encode(cls_model, ["dog"]), siamese.encode(mean_model, ["dog"])
    np.testing.assert_allclose(one, two, rtol=1e-6)
    assert one.shape == (1, 6)  # bidirectional: 2 x hidden
    # On a longer sentence the first position differs from the mean.
    a, b = siamese.encode(cls_model, ["dog cat sat"]), siamese.encode(mean_model, ["dog cat sat"])
    assert not np.allclose(a, b)


def test_classifier_features_follow_the_named_concatenation():
    u = torch.tensor([[1.0, -2.0]])
    v = torch.tensor([[3.0, 1.0]])
    full = siamese.classifier_features(u, v, "(u, v, |u-v|)")
    np.testing.assert_array_equal(full.numpy(), [[1, -2, 3, 1, 2, 3]])
    np.testing.assert_array_equal(siamese.classifier_features(u, v, "(u, v)").numpy(), [[1, -2, 3, 1]])
    np.testing.assert_array_equal(siamese.classifier_features(u, v, "(|u-v|)").numpy(), [[2, 3]])
    np.testing.assert_array_equal(siamese.classifier_features(u, v, "(u, v, |u-v|, u*v)").numpy(),
                                  [[1, -2, 3, 1, 2, 3, 3, -2]])


def test_softmax_loss_builds_the_same_features_as_classifier_features():
    from sentence_transformers.sentence_transformer import losses

    vocab, matrix = _tiny()
    model = siamese.build_encoder(vocab, matrix, pooling="mean")
    for name, flags in siamese.CONCATENATIONS.items():
        loss = losses.SoftmaxLoss(model, 2, 3, **flags)
        width = siamese.classifier_features(torch.zeros(1, 2), torch.zeros(1, 2), name).shape[1]
        assert loss.classifier.in_features == width, name
        # Make the classifier read off its input's first three features, then compare.
        with torch.no_grad():
            loss.classifier.weight.zero_()
            loss.classifier.bias.zero_()
            for i in range(min(3, width)):
                loss.classifier.weight[i, i] = 1.0
        feats = [model.preprocess(["cat sat"]), model.preprocess(["dog"])]
        _, out = loss(feats, None)
        expected = siamese.classifier_features(torch.tensor([[2.0, 2.5]]), torch.tensor([[0.0, 1.0]]), name)
        k = min(3, width)
        np.testing.assert_allclose(out.detach().numpy()[:, :k], expected[:, :k].numpy(), rtol=1e-6)


def test_training_is_deterministic_lowers_the_loss_and_leaves_word_vectors_frozen():
    vocab, matrix = _tiny()
    premises = ["cat sat", "dog", "sat dog", "cat", "dog cat", "sat"] * 4
    hypotheses = ["cat", "dog sat", "dog", "cat sat", "cat", "sat cat"] * 4
    labels = [1, 0, 2, 1, 1, 0] * 4

    def run():
        model = siamese.build_encoder(vocab, matrix, hidden=4, seed=0)
        log = siamese.train(model, premises, hypotheses, labels, steps=40, batch_size=8, lr=0.05, seed=3)
        return model, log

    (m1, log1), (m2, log2) = run(), run()
    assert log1.losses == log2.losses
    assert log1.steps == 40 and log1.examples == 320
    assert log1.loss_drop(10) > 0
    np.testing.assert_array_equal(siamese.encode(m1, ["cat sat dog"]), siamese.encode(m2, ["cat sat dog"]))
    emb = m1[0].emb_layer.weight.detach().numpy()
    np.testing.assert_array_equal(emb, matrix)


def test_mnrl_uses_only_the_positive_pairs_and_checks_batch_size():
    vocab, matrix = _tiny()
    model = siamese.build_encoder(vocab, matrix, hidden=2, seed=0)
    with pytest.raises(ValueError, match="positive_label"):
        siamese.train(model, ["cat"] * 4, ["dog"] * 4, [1, 1, 0, 0], objective="mnrl", steps=1, batch_size=2)
    with pytest.raises(ValueError, match="cannot fill a batch"):
        siamese.train(model, ["cat"] * 4, ["dog"] * 4, [1, 0, 0, 0], objective="mnrl", steps=1, batch_size=2,
                      positive_label=1)
    log = siamese.train(model, ["cat", "dog", "sat", "cat"], ["dog", "cat", "sat", "sat"], [1, 1, 0, 0],
                        objective="mnrl", steps=3, batch_size=2, positive_label=1)
    assert log.examples == 6 and log.objective == "mnrl"


def test_bad_arguments_are_refused():
    vocab, matrix = _tiny()
    with pytest.raises(ValueError, match="pooling"):
        siamese.build_encoder(vocab, matrix, pooling="sum")
    with pytest.raises(ValueError, match="rows"):
        siamese.build_encoder(vocab[:-1], matrix)
    model = siamese.build_encoder(vocab, matrix)
    with pytest.raises(ValueError, match="concatenation"):
        siamese.train(model, ["a"] * 4, ["b"] * 4, [0] * 4, concatenation="(u)", batch_size=2)


def test_search_seconds_counts_pairs_and_sentences():
    cross, bi = siamese.search_seconds(10_000, pair_seconds=2e-3, sentence_seconds=1e-3, similarity_seconds=4.0)
    assert cross == pytest.approx(49_995_000 * 2e-3)
    assert bi == pytest.approx(10.0 + 4.0)
    # Equal per-pass costs and no similarity step: the ratio is (n - 1) / 2, the count of passes.
    c, b = siamese.search_seconds(101, 1.0, 1.0)
    assert c / b == pytest.approx(50.0)
    with pytest.raises(ValueError):
        siamese.search_seconds(1, 1.0, 1.0)


def test_score_difference_takes_the_wider_interval_and_ties_straddle_zero():
    rng = np.random.default_rng(0)
    gold = rng.normal(size=300)
    good = [gold + rng.normal(scale=0.5, size=300) for _ in range(3)]
    bad = gold + rng.normal(scale=3.0, size=300)
    iv = siamese.score_difference(good, [bad], gold, n_boot=300)
    assert iv.low > 0 and iv.estimate > 20
    assert "wider" in iv.method
    # One seed: no estimate of seed noise, so the interval is infinite and no verdict can be reached.
    one = siamese.score_difference(good[:1], [bad], gold, n_boot=100)
    assert one.low == -np.inf and one.high == np.inf
    # A system against itself: the difference is exactly 0 and the interval contains it.
    same = siamese.score_difference(good, good, gold, n_boot=100)
    assert same.estimate == 0 and same.low <= 0 <= same.high
    with pytest.raises(ValueError):
        siamese.score_difference(good, good[:2], gold)
