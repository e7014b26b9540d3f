"""InferSent encoders (pooling), the NLI trainer, the bag-of-vectors baselines and the transfer comparisons."""

import numpy as np
import pytest
import torch

from embrepro import infersent, transfer
from embrepro.claims import Direction, Outcome
from embrepro.data.senteval import TransferTask


def _matrix(n_words=6, dim=4, seed=0):
    rng = np.random.default_rng(seed)
    m = rng.normal(size=(n_words + 1, dim)).astype(np.float32)
    m[0] = 0
    return m


def _raw_outputs(encoder, ids):
    """The BiLSTM's outputs on one unpadded sentence, computed without packing."""
    with torch.no_grad():
        out, _ = encoder.lstm(encoder.embed(torch.as_tensor([ids])))
    return out[0]


@pytest.mark.parametrize("pooling", infersent.POOLINGS)
def test_pooling_matches_hand_computation_and_ignores_padding(pooling):
    enc = infersent.build_encoder(_matrix(), hidden=3, pooling=pooling, seed=1)
    short, long_ = [1, 2, 3], [4, 5, 6, 1, 2]
    out = _raw_outputs(enc, short)
    expected = {"max": out.max(dim=0).values, "mean": out.mean(dim=0),
                "last": torch.cat([out[-1, :3], out[0, 3:]])}[pooling]
    with torch.no_grad():
        alone = enc(*infersent.pad_batch([short]))[0]
        batched = enc(*infersent.pad_batch([long_, short]))[1]   # padded to length 5
    torch.testing.assert_close(alone, expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(batched, expected, rtol=1e-5, atol=1e-6)
    assert alone.shape == (6,)


def test_poolings_differ_and_seed_fixes_weights():
    m = _matrix()
    vecs = {p: infersent.encode(infersent.build_encoder(m, 3, p, seed=2), ["w1 w2 w3"], {"w1": 1, "w2": 2, "w3": 3})
            for p in infersent.POOLINGS}
    assert not np.allclose(vecs["max"], vecs["mean"]) and not np.allclose(vecs["mean"], vecs["last"])
    a = infersent.build_encoder(m, 3, "max", seed=5).lstm.weight_ih_l0
    b = infersent.build_encoder(m, 3, "max", seed=5).lstm.weight_ih_l0
    c = infersent.build_encoder(m, 3, "max", seed=6).lstm.weight_ih_l0
    assert torch.equal(a, b) and not torch.equal(a, c)
    with pytest.raises(ValueError):
        infersent.build_encoder(m, 3, "cls")


def test_encode_keeps_order_and_handles_empty_sentences():
    m = _matrix()
    index = {f"w{i}": i for i in range(1, 7)}
    enc = infersent.build_encoder(m, 2, "max", seed=0)
    texts = ["w1 w2 w3 w4", "", "w5", "unknown words only", "w2 w1"]
    out = infersent.encode(enc, texts, index, batch_size=2)
    one_by_one = np.concatenate([infersent.encode(enc, [t], index) for t in texts])
    np.testing.assert_allclose(out, one_by_one, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out[1], out[3])            # both read as one padding vector
    ids, lengths = infersent.pad_batch([[3, 1], []])
    assert ids.tolist() == [[3, 1], [0, 0]] and lengths.tolist() == [2, 1]


def test_pair_features_hand_values():
    u, v = torch.tensor([[1.0, -2.0]]), torch.tensor([[3.0, 0.5]])
    torch.testing.assert_close(infersent.pair_features(u, v),
                               torch.tensor([[1.0, -2.0, 3.0, 0.5, 2.0, 2.5, 3.0, -1.0]]))


def _toy_nli(n, seed, learnable=True):
    # Label 0 when both sentences hold the same word, else 1 or 2 by the hypothesis's word.
    rng = np.random.default_rng(seed)
    a = rng.integers(1, 7, n)
    b = np.where(rng.random(n) < 0.34, a, rng.integers(1, 7, n))
    y = np.where(a == b, 0, 1 + (b > 3))
    if not learnable:
        y = rng.integers(0, 3, n)
    return [[int(x)] for x in a], [[int(x)] for x in b], y


@pytest.mark.parametrize("learnable", [True, False])
def test_train_nli_learns_a_learnable_task_and_not_noise(learnable):
    torch.set_num_threads(1)
    train = _toy_nli(1200, 0, learnable)
    dev = _toy_nli(300, 1, learnable)
    net = infersent.build_nli_net(infersent.build_encoder(_matrix(seed=3), 8, "max", seed=0), fc_dim=16, seed=0)
    log = infersent.train_nli(net, *train, dev, epochs=6, batch_size=32, lr=0.1, seed=0)
    assert log.steps == 6 * 38 and len(log.dev_accuracy) == 6
    kept = 100 * infersent.accuracy(net, *dev).mean()
    assert kept == pytest.approx(max(log.dev_accuracy))    # the best held-out epoch's weights are restored
    assert log.best_epoch == int(np.argmax(log.dev_accuracy)) + 1
    fresh = _toy_nli(600, 2, learnable)
    test_acc = 100 * infersent.accuracy(net, *fresh).mean()
    if learnable:
        assert test_acc > 85 and log.loss_drop() > 0.3
    else:
        assert test_acc < 45                               # three balanced random classes: chance is 33%


def test_sgd_schedule_decays_each_epoch_and_shrinks_after_a_drop():
    train = _toy_nli(200, 0, learnable=False)
    net = infersent.build_nli_net(infersent.build_encoder(_matrix(), 4, "mean", seed=0), fc_dim=8, seed=0)
    log = infersent.train_nli(net, *train, train, epochs=4, batch_size=50, lr=0.1, seed=0)
    expected, lr = [], 0.1
    for epoch in range(4):
        if epoch:
            lr *= 0.99
            if log.dev_accuracy[epoch - 1] <= max(log.dev_accuracy[:epoch - 1], default=-1):
                lr /= 5
        expected.append(lr)
    np.testing.assert_allclose(log.learning_rates, expected)
    adam = infersent.train_nli(net, *train, train, epochs=3, batch_size=50, lr=0.01, optimizer="adam", seed=0)
    assert adam.learning_rates == [0.01] * 3                # the official code neither decays nor shrinks Adam
    with pytest.raises(ValueError):
        infersent.train_nli(net, *train, train, epochs=1, optimizer="rmsprop")


def test_sif_weights_and_component_removal():
    w = infersent.sif_weights(["the", "cat", "zyx"], {"the": 0.05, "cat": 0.001}, a=1e-3)
    np.testing.assert_allclose(w, [1e-3 / 0.051, 0.5, 1.0])
    probs = infersent.word_probabilities(infersent.word_counts([["a", "b", "a"], ["a"]]))
    assert probs == {"a": 0.75, "b": 0.25}
    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 5)) + np.array([10, 0, 0, 0, 0])   # a dominant common direction
    R = infersent.remove_first_component(X)
    _, _, vt = np.linalg.svd(X, full_matrices=False)
    np.testing.assert_allclose(R @ vt[0], 0, atol=1e-9)
    assert abs(R[:, 0].mean()) < 1.0 < abs(X[:, 0].mean())
    rank_one = np.outer(rng.normal(size=8), [1.0, 2.0, -1.0])
    np.testing.assert_allclose(infersent.remove_first_component(rank_one), 0, atol=1e-9)
    with pytest.raises(ValueError):
        infersent.sif_weights(["a"], {}, a=0)


def test_bag_of_vectors_hand_values():
    m = np.array([[0, 0], [1, 0], [0, 2], [4, 4]], dtype=np.float32)
    index = {"x": 1, "y": 2, "z": 3}
    avg = infersent.BagOfVectors(m, index)
    np.testing.assert_allclose(avg(["x y", "nothing known", "z, x!"]), [[0.5, 1.0], [0, 0], [2.5, 2.0]])
    weighted = infersent.BagOfVectors(m, index, weights=np.array([0, 1.0, 0.5, 0.25]))
    np.testing.assert_allclose(weighted(["x y"]), [[0.5, 0.5]])
    sif = infersent.BagOfVectors(m, index, weights=np.ones(4), remove_pc=True)(["x y", "z", "x", "y z"])
    assert np.linalg.matrix_rank(sif.astype(np.float64), tol=1e-5) <= 1   # 2-d vectors minus one direction


def _result(task, correct):
    correct = np.asarray(correct, dtype=bool)
    return transfer.TransferResult(task, 0.0, 100 * correct.mean(), correct, [1.0], len(correct), len(correct), 2)


def test_macro_difference_hand_values_and_a_tie_is_not_a_win():
    a = [{"T1": _result("T1", [1, 1, 1, 1]), "T2": _result("T2", [1, 0, 1, 0, 1, 0])}] * 3
    b = [{"T1": _result("T1", [1, 1, 0, 0]), "T2": _result("T2", [1, 0, 1, 0, 1, 0])}]
    iv = transfer.macro_difference(a, b, n_boot=200, seed=0)
    assert iv.estimate == pytest.approx(25.0)            # (50 + 0) / 2 points
    assert transfer.macro_accuracy(a[0]) == pytest.approx(75.0)
    tie = transfer.macro_difference(b * 3, b, n_boot=200)
    assert tie.estimate == 0 and Direction(delta=0.0).judge(tie) != Outcome.REPRODUCED
    rng = np.random.default_rng(0)
    noisy = [{"T": _result("T", rng.random(40) < 0.7)} for _ in range(3)]
    other = [{"T": _result("T", rng.random(40) < 0.7)} for _ in range(3)]
    assert Direction(delta=1.0).judge(transfer.macro_difference(noisy, other, n_boot=500)) == Outcome.INCONCLUSIVE
    with pytest.raises(ValueError):
        transfer.macro_difference(a, [{"T1": _result("T1", [1, 1, 0])}, ] * 3)


def test_inner_folds_option_and_relatedness_arguments(monkeypatch):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 80).tolist()
    task = TransferTask("toy", "cv", 2, False, {"train": ([f"s{i}" for i in range(80)], labels)})
    lookup = dict(zip(task.sentences(), labels))

    def encode(s):
        return np.array([[2 * lookup[t] - 1 + 0.01 * (i % 3), 1.0] for i, t in enumerate(s)])

    seen = []
    best_c = transfer._best_c
    monkeypatch.setattr(transfer, "_best_c", lambda X, y, grid, folds, seed: seen.append(folds) or best_c(X, y, grid,
                                                                                                          folds, seed))
    default = transfer.evaluate_task(encode, task, folds=2)
    inner = transfer.evaluate_task(encode, task, folds=2, inner_folds=3)
    assert seen == [2, 2, 3, 3]                            # one inner search per outer fold
    assert default.test_accuracy == inner.test_accuracy == 100.0
    with pytest.raises(ValueError):
        transfer.evaluate_task(encode, task, folds=2, inner_folds=1)
    with pytest.raises(ValueError):
        transfer.relatedness(encode, "STS12")
    with pytest.raises(ValueError):
        transfer.relatedness(encode, "SICKR", split="dev")
