"""Tests of embrepro.contrastive: alignment, uniformity, NLI triplets and fixed-budget training."""

import math

import numpy as np
import pytest

from embrepro import contrastive
from embrepro.data.benchmarks import NLIPairs


def test_alignment_hand_values():
    x = np.array([[1.0, 0.0], [0.0, 2.0]])
    assert contrastive.alignment(x, 3 * x) == 0.0                                  # same directions
    assert contrastive.alignment(x, np.array([[0.0, 1.0], [1.0, 0.0]])) == pytest.approx(2.0)  # orthogonal
    assert contrastive.alignment(x, -x) == pytest.approx(4.0)                     # opposite
    assert contrastive.alignment(x, -x, alpha=1) == pytest.approx(2.0)
    with pytest.raises(ValueError, match="zero vector"):
        contrastive.alignment(np.zeros((1, 2)), x[:1])


def test_uniformity_hand_values():
    assert contrastive.uniformity(np.array([[1.0, 0.0], [-2.0, 0.0]])) == pytest.approx(-8.0)   # antipodal
    assert contrastive.uniformity(np.array([[1.0, 1.0], [2.0, 2.0]])) == pytest.approx(0.0)    # identical
    square = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]])
    # 4 neighbouring pairs at squared distance 2, 2 opposite pairs at 4
    expected = math.log((4 * math.exp(-4) + 2 * math.exp(-8)) / 6)
    assert contrastive.uniformity(square) == pytest.approx(expected)
    # spreading points out lowers it
    assert contrastive.uniformity(square) < contrastive.uniformity(square[:2] + [[0, 0.1], [0.1, 0]])


def test_nli_triplets_pair_entailments_with_contradictions_in_order():
    pairs = NLIPairs("toy", "x", ["p1", "p1", "p1", "p2", "p2", "p3", "p1"],
                     ["e1", "c1", "n1", "e2", "n2", "c3", "e1b"],
                     ["entailment", "contradiction", "neutral", "entailment", "neutral", "contradiction", "entailment"])
    assert contrastive.nli_triplets(pairs) == [("p1", "e1", "c1")]   # p2 lacks a contradiction, p3 an entailment


def test_nli_triplets_of_the_mirror():
    from embrepro.data.benchmarks import load_nli
    triplets = [t for split in ("snli_dev", "snli_test") for t in contrastive.nli_triplets(load_nli(split))]
    assert 5500 < len(triplets) < 6600          # the estimate: about 5.9k from SNLI dev + test
    assert all(len(set(t)) == 3 for t in triplets[:100])


torch = pytest.importorskip("torch")
pytest.importorskip("sentence_transformers")


def _encoder(seed=0):
    from embrepro import siamese
    rng = np.random.default_rng(0)
    words = ["<pad>"] + [f"w{i}" for i in range(30)]
    matrix = rng.normal(size=(len(words), 8)).astype(np.float32)
    matrix[0] = 0
    return siamese.build_encoder(words, matrix, hidden=8, seed=seed)


def _pairs(n=64, seed=0):
    # A positive shares its anchor's two words in a different order, plus a third word.
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        a, b, c = rng.choice(30, 3, replace=False)
        out.append((f"w{a} w{b}", f"w{b} w{c} w{a}"))
    return out


def _top1(model, pairs):
    a = contrastive._embed(model, [p for p, _ in pairs])
    b = contrastive._embed(model, [q for _, q in pairs])
    a, b = contrastive._unit(a), contrastive._unit(b)
    return float(np.mean((a @ b.T).argmax(1) == np.arange(len(pairs))))


def test_training_is_deterministic_counts_its_budget_and_learns():
    from sentence_transformers.sentence_transformer import losses
    train, held = _pairs(64, 0), _pairs(40, 1)
    texts = [t for p in held for t in p]

    def run():
        model = _encoder()
        log = contrastive.train_steps(model, losses.MultipleNegativesRankingLoss(model), train, steps=30,
                                      batch_size=16, lr=0.02, seed=5, probe_pairs=held, probe_texts=texts,
                                      probe_every=10, progress=False)
        return model, log

    before = _top1(_encoder(), held)
    (m1, log1), (_, log2) = run(), run()
    assert log1.losses == log2.losses
    assert log1.examples == 30 * 16 and len(log1.losses) == 30
    assert [p.step for p in log1.probes] == [0, 10, 20, 30]
    assert _top1(m1, held) > before + 0.1                            # held-out positives now found first more often
    assert log1.probes[-1].uniformity < log1.probes[0].uniformity    # in-batch negatives spread the space
    assert np.mean(log1.losses[-5:]) < np.mean(log1.losses[:5])
    assert not m1.training


def test_bad_training_arguments():
    from sentence_transformers.sentence_transformer import losses
    model = _encoder()
    loss = losses.MultipleNegativesRankingLoss(model)
    with pytest.raises(ValueError, match="fill a batch"):
        contrastive.train_steps(model, loss, _pairs(4), steps=1, batch_size=8)
    with pytest.raises(ValueError, match="same number of texts"):
        contrastive.train_steps(model, loss, _pairs(8) + [("a", "b", "c")], steps=1, batch_size=2)
    with pytest.raises(ValueError, match="probe_pairs"):
        contrastive.train_steps(model, loss, _pairs(8), steps=1, batch_size=2, probe_every=1)
    with pytest.raises(ValueError, match="steps"):
        contrastive.train_steps(model, loss, _pairs(8), steps=0, batch_size=2)
