"""SentEval-style transfer evaluation: loaders, protocol and a leak check."""

import numpy as np
import pytest

from embrepro import transfer
from embrepro.data.senteval import TRANSFER_TASKS, TransferTask, load_transfer


def _task(protocol, n=120, pairs=False, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n).tolist()
    texts = [f"s{i}" for i in range(n)]
    if pairs:
        texts = [(f"a{i}", f"b{i}") for i in range(n)]
    if protocol == "cv":
        splits = {"train": (texts, labels)}
    elif protocol == "kfold":
        splits = {"train": (texts[:80], labels[:80]), "test": (texts[80:], labels[80:])}
    else:
        splits = {"train": (texts[:60], labels[:60]), "dev": (texts[60:90], labels[60:90]),
                  "test": (texts[90:], labels[90:])}
    return TransferTask("toy", protocol, 2, pairs, splits), dict(zip([t for t in texts], labels))


def _encoder(label_of, signal: float, seed=1):
    rng = np.random.default_rng(seed)

    def encode(sentences):
        x = rng.normal(size=(len(sentences), 8))
        x[:, 0] += signal * np.array([2 * label_of.get(s, 0) - 1 for s in sentences])
        return x
    return encode


def test_pair_features_hand_values():
    u, v = np.array([[1.0, -2.0]]), np.array([[3.0, 0.5]])
    np.testing.assert_allclose(transfer.pair_features(u, v), [[2.0, 2.5, 3.0, -1.0]])
    with pytest.raises(ValueError):
        transfer.pair_features(u, np.ones((1, 3)))


@pytest.mark.parametrize("protocol", ["cv", "kfold", "split"])
def test_informative_embeddings_score_high_and_noise_scores_at_chance(protocol):
    task, label_of = _task(protocol)
    good = transfer.evaluate_task(_encoder(label_of, 3.0), task, folds=2)
    noise = transfer.evaluate_task(_encoder({}, 0.0), task, folds=2)
    assert good.test_accuracy > 90
    assert 25 < noise.test_accuracy < 75            # no label leaks into the protocol
    assert good.correct.dtype == bool and len(good.correct) == good.n_test
    assert good.test_accuracy == pytest.approx(100 * good.correct.mean(), abs=1e-9 if protocol != "cv" else 1.0)
    if protocol == "cv":
        assert len(good.chosen_c) == 2 and good.n_test == 120   # every item tested once, one C per outer fold
    else:
        assert len(good.chosen_c) == 1


def test_pair_task_uses_pair_features():
    # The label is whether the two sentences' vectors agree in sign on dimension 0: linear in |u - v|, u * v,
    # not in u or v alone, so the pair features must be what the classifier sees.
    n = 200
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, n).tolist()
    texts = [(f"a{i}", f"b{i}") for i in range(n)]
    vec = {}
    for (a, b), y in zip(texts, labels):
        s = rng.choice([-1, 1])
        vec[a] = np.r_[2 * s, rng.normal(size=3)]
        vec[b] = np.r_[2 * s * (1 if y else -1), rng.normal(size=3)]
    task = TransferTask("pairs", "kfold", 2, True, {"train": (texts[:150], labels[:150]), "test": (texts[150:], labels[150:])})
    result = transfer.evaluate_task(lambda ss: np.stack([vec[s] for s in ss]), task, folds=3)
    assert result.test_accuracy > 95


def test_ties_choose_the_strongest_regularisation(monkeypatch):
    monkeypatch.setattr(transfer, "_cv_accuracy", lambda X, y, c, folds, seed: 0.8)
    c, score = transfer._best_c(np.zeros((4, 2)), np.array([0, 1, 0, 1]), transfer.C_GRID_CV, 2, 0)
    assert c == 0.25 and score == 80.0


def test_bad_input():
    task, label_of = _task("kfold")
    with pytest.raises(ValueError, match="folds"):
        transfer.evaluate_task(_encoder(label_of, 1.0), task, folds=1)
    with pytest.raises(ValueError, match="shape"):
        transfer.evaluate_task(lambda ss: np.zeros((3, 2)), task, folds=2)
    with pytest.raises(ValueError, match="non-finite"):
        transfer.evaluate_task(lambda ss: np.full((len(ss), 2), np.nan), task, folds=2)
    with pytest.raises(ValueError, match="unknown transfer"):
        transfer.evaluate(_encoder(label_of, 1.0), ["NOPE"])


def test_subsample_is_stratified_and_bounded():
    task, _ = _task("cv", n=400)
    small = transfer.subsample(task, 100, seed=0)
    texts, labels = small.splits["train"]
    assert 95 <= len(labels) <= 105
    share = np.mean(labels)
    assert abs(share - np.mean(task.splits["train"][1])) < 0.03


SIZES = {"MR": {"train": 10662}, "CR": {"train": 3775}, "SUBJ": {"train": 10000}, "MPQA": {"train": 10606},
         "SST2": {"train": 6920, "dev": 872, "test": 1821}, "TREC": {"train": 5452, "test": 500},
         "MRPC": {"train": 4076, "test": 1725}, "SICKE": {"train": 4500, "dev": 500, "test": 4927}}


@pytest.mark.parametrize("name", list(TRANSFER_TASKS))
def test_loaders_match_senteval_sizes(name):
    task = load_transfer(name)
    assert task.sizes() == SIZES[name]
    assert task.pairs == (name in ("MRPC", "SICKE"))
    labels = [y for _, ys in task.splits.values() for y in ys]
    assert set(labels) == set(range(task.n_classes))


def test_loader_details():
    mr = load_transfer("MR")
    assert sum(mr.splits["train"][1]) == 5331               # balanced: 5,331 positive of 10,662
    mrpc = load_transfer("MRPC")
    assert mrpc.splits["train"][0][0][0].startswith("Amrozi accused his brother")
    assert sum(mrpc.splits["test"][1]) == 1147              # MRPC test: 1,147 paraphrases of 1,725
    with pytest.raises(ValueError, match="unknown transfer task"):
        load_transfer("SST5")
