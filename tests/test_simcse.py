"""Tests of embrepro.simcse: word deletion, the InfoNCE loss and the three kinds of dropout noise."""

import math

import numpy as np
import pytest

from embrepro import simcse


def test_delete_words_removes_the_right_fraction_and_keeps_order():
    rng = np.random.default_rng(0)
    text = " ".join(f"w{i}" for i in range(20))
    out = simcse.delete_words(text, 0.1, rng).split()
    assert len(out) == 18                                          # round(0.1 * 20) = 2 words removed
    assert out == sorted(out, key=lambda w: int(w[1:]))             # survivors keep their order
    assert set(out) < set(text.split())
    assert len(simcse.delete_words(text, 0.3, rng).split()) == 14
    # short sentences: at least one word goes, at least one stays
    assert len(simcse.delete_words("a b c", 0.1, rng).split()) == 2
    assert simcse.delete_words("a b", 0.9, rng) in ("a", "b")
    assert simcse.delete_words("alone", 0.5, rng) == "alone"
    assert simcse.delete_words("a b c", 0.0, rng) == "a b c"
    with pytest.raises(ValueError, match="ratio"):
        simcse.delete_words("a b", 1.0, rng)


def test_deletion_pairs_are_seeded():
    sents = [" ".join(f"x{i}" for i in range(10)) for _ in range(5)]
    a, b = simcse.deletion_pairs(sents, 0.2, seed=3), simcse.deletion_pairs(sents, 0.2, seed=3)
    assert a == b and all(s == x for (s, _), x in zip(a, sents))
    assert all(len(d.split()) == 8 for _, d in a)
    assert len({d for _, d in a}) > 1                                # different words per sentence
    assert a != simcse.deletion_pairs(sents, 0.2, seed=4)


torch = pytest.importorskip("torch")
pytest.importorskip("sentence_transformers")


def test_info_nce_hand_values():
    e = torch.eye(2)
    # perfect pairs, orthogonal negatives: logits [[2, 0], [0, 2]]
    assert float(simcse.info_nce(e, e, scale=2.0)) == pytest.approx(math.log(1 + math.exp(-2)))
    assert float(simcse.info_nce(e, e)) < 1e-6                      # scale 20: almost no loss left
    # scale 1, positives swapped: each anchor's own positive has cosine 0, the other 1
    assert float(simcse.info_nce(e, e.flip(0), scale=1.0)) == pytest.approx(math.log(1 + math.e) - 0.0)
    # a hard negative equal to the anchor doubles the competition: logits [2, 0, 2, 0]
    assert float(simcse.info_nce(e, e, e, scale=2.0)) == pytest.approx(math.log(2 + 2 * math.exp(-2)))
    # only directions count
    assert float(simcse.info_nce(3 * e, 0.5 * e, scale=5.0)) == pytest.approx(float(simcse.info_nce(e, e, scale=5.0)))


def _encoder(dropout=0.1, seed=0):
    rng = np.random.default_rng(0)
    words = ["<pad>"] + [f"w{i}" for i in range(30)]
    matrix = rng.normal(size=(len(words), 8)).astype(np.float32)
    matrix[0] = 0
    return simcse.glove_bilstm(words, matrix, hidden=8, dropout=dropout, seed=seed)


SENTS = ["w1 w2 w3", "w4 w5", "w6 w7 w8 w9", "w10 w1"]


def _features(model, sents=SENTS, columns=2):
    return [model.preprocess(list(sents)) for _ in range(columns)]


@pytest.mark.parametrize("make", ["bilstm", "minilm"])
def test_noise_kinds_control_the_two_views(make):
    if make == "bilstm":
        model = _encoder()
    else:
        from embrepro.models import load_encoder
        model = simcse.truncate_transformer(load_encoder(device="cpu"), 1)
    model.train()
    torch.manual_seed(0)
    with torch.no_grad():
        a, b = simcse.views(model, _features(model), "dropout")
        assert not torch.allclose(a, b)                                     # two masks, two views
        a, b = simcse.views(model, _features(model), "none")
        assert torch.equal(a, b)                                            # no dropout: identical
        model.eval()
        ref = model(_features(model, columns=1)[0])["sentence_embedding"]
        model.train()
        assert torch.allclose(a, ref, atol=1e-6)                            # ... and equal to inference
        f1 = simcse.views(model, _features(model), "fixed")
        assert torch.equal(f1[0], f1[1])                                    # fixed: same mask on both passes
        assert not torch.allclose(f1[0], ref, atol=1e-4)                    # ... which is a real mask
        f2 = simcse.views(model, _features(model), "fixed")
        assert not torch.allclose(f1[0], f2[0])                             # ... and a new one next step
    assert model.training                                                   # views() restores the mode
    model.eval()
    with torch.no_grad():
        a, b = simcse.views(model, _features(model), "dropout")
    assert not torch.equal(a, b) and not model.training


def test_no_dropout_at_p_zero_and_bad_noise():
    model = _encoder(dropout=0.0)
    model.train()
    with torch.no_grad():
        a, b = simcse.views(model, _features(model), "dropout")
    assert torch.equal(a, b)                                                # p = 0 is the no-noise case
    with pytest.raises(ValueError, match="noise"):
        simcse.views(model, _features(model), "gaussian")
    with pytest.raises(ValueError, match="noise"):
        simcse.SimCSELoss(model, noise="masked")
    with pytest.raises(ValueError, match="dropout p"):
        simcse.TokenDropout(1.0)


def test_loss_equals_sentence_transformers_mnrl():
    from sentence_transformers.sentence_transformer import losses
    model = _encoder()
    ours, theirs = simcse.SimCSELoss(model, noise="none"), losses.MultipleNegativesRankingLoss(model, scale=20.0)
    model.eval()
    pairs = [model.preprocess(SENTS), model.preprocess(["w2 w1", "w5 w4 w3", "w9 w8", "w1 w10 w11"])]
    triplets = pairs + [model.preprocess(["w20", "w21 w22", "w23 w24", "w25"])]
    with torch.no_grad():
        assert float(ours(pairs)) == pytest.approx(float(theirs(pairs, None)), rel=1e-5)
        assert float(ours(triplets)) == pytest.approx(float(theirs(triplets, None)), rel=1e-5)
        assert float(ours(triplets)) > float(ours(pairs))                   # hard negatives add competitors
    assert {id(p) for p in ours.parameters()} == {id(p) for p in model.parameters()}


def test_identical_views_make_the_positive_logit_maximal():
    # fixed and no noise: every anchor's positive has cosine 1, so the loss only pushes negatives away;
    # with dropout the positive cosine falls below 1 and the loss is larger on the same batch.
    model = _encoder(dropout=0.3)
    feats = _features(model)
    torch.manual_seed(1)
    with torch.no_grad():
        e = simcse.views(model, feats, "fixed")
        cos = torch.nn.functional.cosine_similarity(e[0], e[1])
        assert torch.allclose(cos, torch.ones_like(cos))
        d = simcse.views(model, feats, "dropout")
        assert float(torch.nn.functional.cosine_similarity(d[0], d[1]).max()) < 1 - 1e-4


def test_training_with_each_noise_is_deterministic():
    from embrepro import contrastive
    sents = [" ".join(f"w{j}" for j in np.random.default_rng(i).choice(30, 4, replace=False)) for i in range(40)]

    def run(noise):
        model = _encoder(seed=2)
        log = contrastive.train_steps(model, simcse.SimCSELoss(model, noise), [(s, s) for s in sents], steps=6,
                                      batch_size=8, lr=0.01, seed=3, progress=False)
        return log.losses

    for noise in simcse.NOISES:
        assert run(noise) == run(noise)
    # identical views start from a lower loss than two dropout views of the same batch
    assert run("none")[0] < run("dropout")[0]


def test_truncate_transformer():
    from embrepro.models import load_encoder
    full = load_encoder(device="cpu")
    short = simcse.truncate_transformer(load_encoder(device="cpu"), 2)
    assert len(short[0].auto_model.encoder.layer) == 2 and short[0].auto_model.config.num_hidden_layers == 2
    a, b = full.encode(SENTS[:2] + ["a cat sits"]), short.encode(SENTS[:2] + ["a cat sits"])
    assert a.shape == b.shape and not np.allclose(a, b)
    with pytest.raises(ValueError, match="layers"):
        simcse.truncate_transformer(short, 3)


def test_item_difference_takes_the_wider_interval():
    a = [np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.5, 2.5, 3.5, 4.5]), np.array([0.5, 1.5, 2.5, 3.5])]
    b = [np.array([0.0, 1.0, 2.0, 3.0])] * 3
    iv = simcse.item_difference(a, b, n_boot=200)
    assert iv.estimate == pytest.approx(1.0)
    assert iv.low < 1.0 < iv.high and "t over 3 seeds" in iv.method
    # identical per-seed differences: no seed noise, the (zero-width) item bootstrap is not wider
    same = simcse.item_difference([np.array([1.0, 3.0])] * 3, [np.zeros(2)] * 3, n_boot=200)
    assert same.estimate == pytest.approx(2.0) and same.low >= 1.0 - 1e-9
    with pytest.raises(ValueError, match="one array"):
        simcse.item_difference(np.zeros(3), np.zeros(3))
