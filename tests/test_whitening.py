"""Tests of embrepro.whitening: pooling over masks and layers, whitening statistics, k truncation."""

import math

import numpy as np
import pytest

from embrepro import whitening as W


def test_hand_computed_two_dimensional_whitening():
    # mean 0; covariance (n - 1 = 3 in the denominator) diag(2/3, 8/3): the second axis has more variance
    x = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 2.0], [0.0, -2.0]])
    w = W.fit_whitening(x)
    np.testing.assert_allclose(w.mu, [0.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(w.variances, [8 / 3, 2 / 3])
    z = w.transform(x)
    # first kernel column is the second axis scaled by 1/sqrt(8/3): [0, 2] -> +-sqrt(3/2)
    np.testing.assert_allclose(np.abs(z[2]), [math.sqrt(1.5), 0.0], atol=1e-12)
    np.testing.assert_allclose(np.abs(z[0]), [0.0, math.sqrt(1.5)], atol=1e-12)
    np.testing.assert_allclose(np.cov(z, rowvar=False), np.eye(2), atol=1e-12)


def test_whitened_covariance_is_identity_and_mean_zero():
    rng = np.random.default_rng(0)
    mixing = rng.normal(size=(6, 6))
    x = rng.normal(size=(500, 6)) @ mixing + 5.0          # correlated, shifted
    assert abs(np.cov(x, rowvar=False)[0, 1]) > 0.1       # really correlated before
    z = W.fit_whitening(x).transform(x)
    np.testing.assert_allclose(z.mean(axis=0), np.zeros(6), atol=1e-10)
    np.testing.assert_allclose(np.cov(z, rowvar=False), np.eye(6), atol=1e-10)


def test_truncation_keeps_the_directions_of_largest_variance():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2000, 3)) * np.array([1.0, 3.0, 2.0])   # variances about 1, 9, 4
    full = W.fit_whitening(x)
    one = W.fit_whitening(x, k=1)
    assert one.kernel.shape == (3, 1) and one.k == 1 and full.k == 3
    # the kept direction is the axis with variance 9: the kernel column is +-e_1 / std(x_1)
    column = one.kernel[:, 0]
    assert abs(column[1]) / np.linalg.norm(column) > 0.99
    np.testing.assert_allclose(np.linalg.norm(column), 1 / math.sqrt(one.variances[0]))
    assert 8.0 < one.variances[0] < 10.0
    two = full.truncate(2)
    np.testing.assert_allclose(two.kernel, full.kernel[:, :2])
    np.testing.assert_allclose(W.fit_whitening(x, k=2).kernel, two.kernel)
    np.testing.assert_allclose(np.cov(two.transform(x), rowvar=False), np.eye(2), atol=1e-10)
    assert two.transform(x).shape == (2000, 2)
    with pytest.raises(ValueError, match="k must be"):
        full.truncate(4)
    with pytest.raises(ValueError, match="k must be"):
        W.fit_whitening(x, k=0)


def test_statistics_fitted_on_one_set_apply_to_another():
    rng = np.random.default_rng(2)
    a = rng.normal(size=(300, 4)) @ np.diag([1.0, 2.0, 3.0, 4.0])
    b = rng.normal(size=(200, 4)) + 10.0                        # a different mean and covariance
    wa = W.fit_whitening(a)
    z = wa.transform(b)
    np.testing.assert_allclose(z, (b - a.mean(axis=0)) @ wa.kernel)   # A's mean and kernel, not B's
    assert np.abs(z.mean(axis=0)).max() > 1.0                  # B is not centred by A's statistics
    assert not np.allclose(z, W.fit_whitening(b).transform(b))
    np.testing.assert_allclose(wa.transform(a.mean(axis=0, keepdims=True)), np.zeros((1, 4)), atol=1e-12)
    with pytest.raises(ValueError, match="dimension 4"):
        wa.transform(np.ones((2, 3)))


def test_centering_control_only_removes_the_mean():
    x = np.array([[1.0, 2.0], [3.0, 6.0], [5.0, 1.0]])
    c = W.centering(x)
    np.testing.assert_allclose(c.kernel, np.eye(2))
    np.testing.assert_allclose(c.transform(x), x - [3.0, 3.0])
    assert c.variances is None
    with pytest.raises(ValueError, match="centering-only"):
        c.truncate(1)


def test_too_few_or_degenerate_vectors_raise():
    with pytest.raises(ValueError, match="more than 3 vectors"):
        W.fit_whitening(np.random.default_rng(0).normal(size=(3, 3)))
    flat = np.zeros((10, 3))
    flat[:, 0] = np.arange(10)
    # two directions without variance are dropped: only one is whitened, whatever k asks for
    w = W.fit_whitening(flat)
    assert w.k == 1 and W.fit_whitening(flat, k=2).k == 1
    np.testing.assert_allclose(np.abs(w.transform(flat)[:, 0]).max(), 4.5 / np.arange(10).std(ddof=1))
    # a direction with only rounding-level variance (1e-13 of the largest) is dropped too
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 3))
    x[:, 2] = x[:, 0] + x[:, 1] + 1e-7 * rng.normal(size=200)    # nearly a linear constraint
    assert W.fit_whitening(x).k == 2
    assert W.fit_whitening(x, rtol=1e-20).k == 3
    with pytest.raises(ValueError, match="no variance in any"):
        W.fit_whitening(np.ones((5, 2)))


def test_pooling_ignores_padding_and_picks_layers():
    # batch of 2, 3 positions, dim 2; the second sentence has one real token after [CLS] and a pad
    emb = np.zeros((2, 3, 2))
    layer1 = np.array([[[1, 1], [3, 3], [5, 5]], [[2, 0], [4, 0], [999, 999]]], dtype=float)
    last = np.array([[[10, 0], [20, 0], [30, 0]], [[0, 10], [0, 30], [-999, -999]]], dtype=float)
    mask = np.array([[1, 1, 1], [1, 1, 0]])
    layers = [emb, layer1, last]
    np.testing.assert_allclose(W.pool(layers, mask, "cls"), [[10, 0], [0, 10]])
    np.testing.assert_allclose(W.pool(layers, mask, "mean"), [[20, 0], [0, 20]])       # pad ignored
    np.testing.assert_allclose(W.pool(layers, mask, "first_last"), [[11.5, 1.5], [1.5, 10]])
    np.testing.assert_allclose(W.pool(layers, mask, "embed_last"), [[10, 0], [0, 10]])
    # changing a padded position changes nothing
    last2 = last.copy()
    last2[1, 2] = [1e6, -1e6]
    np.testing.assert_allclose(W.pool([emb, layer1, last2], mask, "mean"), W.pool(layers, mask, "mean"))
    np.testing.assert_allclose(W.masked_mean(last, np.zeros((2, 3))), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="needs the embedding layer"):
        W.pool([last], mask, "first_last")
    with pytest.raises(ValueError, match="pooling must be"):
        W.pool(layers, mask, "max")


def test_ditto_weights_are_the_attention_diagonal_and_pool_the_first_last_average():
    # one sentence of 3 tokens (the last one padding), 2 heads, one layer
    attn = np.zeros((1, 2, 3, 3))
    attn[0, 1] = [[0.5, 0.3, 0.2], [0.1, 0.25, 0.65], [0.3, 0.3, 0.4]]
    w = W.ditto_weights([attn], layer=1, head=1)
    np.testing.assert_allclose(w, [[0.5, 0.25, 0.4]])
    emb = np.zeros((1, 3, 1))
    first = np.array([[[2.0], [4.0], [100.0]]])
    last = np.array([[[4.0], [8.0], [-100.0]]])
    mask = np.array([[1, 1, 0]])
    # first-last average per token: 3, 6 (pad ignored); weights 0.5 and 0.25 -> (1.5 + 1.5) / 0.75 = 4
    np.testing.assert_allclose(W.ditto_pool([emb, first, last], mask, w), [[4.0]])
    # equal weights give the plain first-last average
    np.testing.assert_allclose(W.ditto_pool([emb, first, last], mask, np.ones((1, 3))),
                               W.pool([emb, first, last], mask, "first_last"))
    with pytest.raises(ValueError, match="layer"):
        W.ditto_weights([attn], layer=2, head=0)
    with pytest.raises(ValueError, match="head"):
        W.ditto_weights([attn], layer=1, head=2)


def test_k_grid():
    assert W.k_grid(384, [1, 0.5, 1 / 3, 0.5]) == [384, 192, 128]
    assert W.k_grid(50, [1, 1 / 3, 0.01]) == [50, 17, 1]
    with pytest.raises(ValueError):
        W.k_grid(10, [0])


def test_transformer_mean_pooling_equals_the_model_before_normalisation():
    pytest.importorskip("sentence_transformers")
    from embrepro.models import ModelError, load_encoder

    try:
        model = load_encoder(device="cpu")
    except ModelError as exc:  # pragma: no cover - the pinned model is part of the environment
        pytest.skip(str(exc))
    texts = ["A man is playing a guitar.", "Two dogs run.", "The quick brown fox jumps over the lazy dog today."]
    out = W.transformer_poolings(model, texts, batch_size=2)
    assert set(out) == set(W.POOLINGS) and out["mean"].shape == (3, 384)
    mean = out["mean"] / np.linalg.norm(out["mean"], axis=1, keepdims=True)
    np.testing.assert_allclose(mean, model.encode(texts), atol=1e-5)
    assert not np.allclose(out["cls"], out["mean"])
    # batching and padding do not change a sentence's vectors
    alone = W.transformer_poolings(model, texts[1:2])
    for how in W.POOLINGS:
        np.testing.assert_allclose(alone[how][0], out[how][1], atol=1e-4)
    # Ditto heads: eager attention for the pass, the model's own implementation restored after it
    before = model[0].auto_model.config._attn_implementation
    ditto = W.transformer_poolings(model, texts, poolings=("mean",), ditto_heads=[(1, 0), (6, 11)])
    assert set(ditto) == {"mean", "ditto L1 H0", "ditto L6 H11"}
    assert model[0].auto_model.config._attn_implementation == before
    np.testing.assert_allclose(ditto["mean"], out["mean"], atol=1e-4)
    assert not np.allclose(ditto["ditto L1 H0"], out["first_last"], atol=1e-3)
    with pytest.raises(ValueError, match="no head"):
        W.transformer_poolings(model, texts, ditto_heads=[(7, 0)])


def test_a_failed_divide_and_conquer_svd_falls_back_to_the_qr_driver(monkeypatch):
    # numpy's SVD (LAPACK gesdd) can fail to converge on a rank-deficient covariance; the fit must
    # then give the same whitening through scipy's gesvd driver.
    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 3)) @ np.array([[2.0, 0.0, 0.0], [0.5, 1.0, 0.0], [0.0, 0.3, 0.2]])
    expected = W.fit_whitening(x)

    def no_convergence(*args, **kwargs):
        raise np.linalg.LinAlgError("SVD did not converge")

    monkeypatch.setattr(np.linalg, "svd", no_convergence)
    got = W.fit_whitening(x)
    assert got.k == expected.k == 3
    np.testing.assert_allclose(got.variances, expected.variances, rtol=1e-12)
    z = got.transform(x)
    np.testing.assert_allclose(np.cov(z, rowvar=False), np.eye(3), atol=1e-12)
