import numpy as np
import pytest
from scipy.stats import spearmanr

from embrepro import multivector as mv
from embrepro.retrieval import RetrievalData


def clustered_sets(rng, n_sets, dim=16, n_centres=8, lo=3, hi=12, noise=0.3):
    centres = mv.normalise_rows(rng.standard_normal((n_centres, dim)))
    sets = []
    for _ in range(n_sets):
        k = rng.integers(lo, hi)
        pts = centres[rng.integers(0, n_centres, k)] + noise * rng.standard_normal((k, dim))
        sets.append(mv.normalise_rows(pts).astype(np.float32))
    return mv.Ragged.from_list(sets)


def test_ragged_roundtrip_and_owner():
    r = mv.Ragged.from_list([np.ones((2, 3)), np.zeros((1, 3)), 2 * np.ones((3, 3))])
    assert len(r) == 3 and r.lengths.tolist() == [2, 1, 3]
    assert r.owner.tolist() == [0, 0, 1, 2, 2, 2]
    assert np.allclose(r[2], 2) and np.allclose(r.take([1])[0], 0)
    with pytest.raises(ValueError):
        mv.Ragged(np.zeros((3, 2), np.float32), np.array([0, 2]))


def test_chamfer_matches_brute_force_and_chunks():
    rng = np.random.default_rng(0)
    q, d = clustered_sets(rng, 5), clustered_sets(rng, 30)
    brute = np.array([[(q[i] @ d[j].T).max(axis=1).sum() for j in range(len(d))] for i in range(len(q))])
    assert np.allclose(mv.chamfer_scores(q, d), brute, atol=1e-5)
    assert np.allclose(mv.chamfer_scores(q, d, chunk_vectors=7), brute, atol=1e-5)  # many small chunks
    assert np.allclose(mv.chamfer_one(q[2], d, [4, 0, 9]), brute[2, [4, 0, 9]], atol=1e-5)


def test_fde_approximates_chamfer_better_with_more_repetitions():
    rng = np.random.default_rng(1)
    q, d = clustered_sets(rng, 20), clustered_sets(rng, 200)
    exact = mv.chamfer_scores(q, d)

    def corr(reps):
        values = []
        for seed in range(3):
            cfg = mv.FDEConfig(reps=reps, k_sim=3, d_proj=None, seed=seed)
            approx = mv.fde_encode(q, cfg, "query") @ mv.fde_encode(d, cfg, "doc").T
            values.append(np.mean([spearmanr(approx[i], exact[i]).statistic for i in range(len(q))]))
        return np.mean(values)

    c1, c20 = corr(1), corr(20)
    assert c20 > c1 + 0.1, (c1, c20)
    assert c20 > 0.6, (c1, c20)


def test_fde_dimension_and_determinism():
    rng = np.random.default_rng(2)
    d = clustered_sets(rng, 4)
    cfg = mv.FDEConfig(reps=3, k_sim=2, d_proj=5, seed=7)
    a, b = mv.fde_encode(d, cfg, "doc"), mv.fde_encode(d, cfg, "doc")
    assert a.shape == (4, 3 * 4 * 5) == (4, cfg.dim(16))
    assert np.array_equal(a, b)
    assert not np.allclose(a, mv.fde_encode(d, mv.FDEConfig(reps=3, k_sim=2, d_proj=5, seed=8), "doc"))
    assert mv.fde_encode(d, mv.FDEConfig(reps=3, k_sim=2, d_proj=5, final_dim=10), "doc").shape == (4, 10)
    with pytest.raises(ValueError):
        mv.fde_encode(d, cfg, "passage")


def test_same_seed_gives_same_partitions_for_query_and_document():
    # one unit token as query and as document: Chamfer is 1 and, with shared partitions, the FDE
    # inner product is exactly reps (every repetition puts both in the same partition)
    x = mv.normalise_rows(np.random.default_rng(3).standard_normal((1, 16))).astype(np.float32)
    one = mv.Ragged.from_list([x])
    cfg = mv.FDEConfig(reps=6, k_sim=4, d_proj=None, seed=0)
    assert (mv.fde_encode(one, cfg, "query") @ mv.fde_encode(one, cfg, "doc", fill_empty=False).T).item() == pytest.approx(6.0, abs=1e-5)
    other = mv.FDEConfig(reps=6, k_sim=4, d_proj=None, seed=1)
    mismatched = (mv.fde_encode(one, cfg, "query") @ mv.fde_encode(one, other, "doc", fill_empty=False).T).item()
    assert mismatched < 6.0 - 0.5  # different seeds: the partitions disagree in some repetitions


def test_query_sums_and_document_averages():
    x = np.array([[1.0, 0.0], [0.9, 0.1]], np.float32)  # both on the same side of every hyperplane? not needed:
    cfg = mv.FDEConfig(reps=1, k_sim=1, d_proj=None, seed=0)
    planes, _ = mv._repetition(2, cfg, 0)
    codes = mv.simhash_codes(x, planes)
    sets = mv.Ragged.from_list([x])
    qf, df = mv.fde_encode(sets, cfg, "query"), mv.fde_encode(sets, cfg, "doc", fill_empty=False)
    for part in range(2):
        members = x[codes == part]
        block = slice(part * 2, part * 2 + 2)
        assert np.allclose(qf[0, block], members.sum(axis=0) if len(members) else 0)
        assert np.allclose(df[0, block], members.mean(axis=0) if len(members) else 0)


def test_empty_partitions_filled_with_nearest_token_by_hamming():
    rng = np.random.default_rng(4)
    cfg = mv.FDEConfig(reps=1, k_sim=3, d_proj=None, seed=0)
    planes, _ = mv._repetition(8, cfg, 0)
    x = mv.normalise_rows(rng.standard_normal((2, 8))).astype(np.float32)
    codes = mv.simhash_codes(x, planes)
    sets = mv.Ragged.from_list([x])
    filled = mv.fde_encode(sets, cfg, "doc").reshape(8, 8)
    bare = mv.fde_encode(sets, cfg, "doc", fill_empty=False).reshape(8, 8)
    for part in range(8):
        if part in codes:
            assert np.allclose(filled[part], bare[part])
        else:
            assert np.allclose(bare[part], 0)
            dist = [bin(int(c) ^ part).count("1") for c in codes]
            assert np.allclose(filled[part], x[int(np.argmin(dist))])  # argmin: first on ties
    # every partition of a one-token document holds that token
    single = mv.fde_encode(mv.Ragged.from_list([x[:1]]), cfg, "doc").reshape(8, 8)
    assert np.allclose(single, x[0])


def test_recall_curve_and_candidates_needed():
    scores = np.array([[0.9, 0.8, 0.1, 0.5], [0.1, 0.2, 0.3, 0.4]])
    truth = np.array([[0, 3], [0, 1]])
    assert mv.ranks_of(scores, truth).tolist() == [[0, 2], [3, 2]]
    assert mv.recall_curve(scores, truth, [1, 3, 4]).tolist() == [0.25, 0.75, 1.0]
    assert mv.candidates_needed(scores, truth, 0.75) == 3
    assert mv.candidates_needed(scores, truth, 1.0) == 4


def test_sample_keeps_relevant_documents():
    corpus = {f"d{i}": {"title": "", "text": f"doc {i}"} for i in range(20)}
    queries = {"q1": "a", "q2": "b", "q3": "c"}
    qrels = {"q1": {"d3": 1}, "q2": {"d7": 1, "d15": 1}, "q3": {"d1": 0}}
    data = RetrievalData("toy", corpus, queries, qrels)
    s = data.sample(6, seed=0)
    assert len(s.corpus) == 6 and {"d3", "d7", "d15"} <= set(s.corpus)
    assert list(s.queries) == ["q1", "q2"]  # q3 has no relevant document
    assert list(s.corpus) == sorted(s.corpus, key=lambda d: int(d[1:]))
    assert list(data.sample(2, seed=0).queries) == ["q1"]  # q2's two documents no longer fit


def test_recall_by_depth_per_query_and_resampled_depths():
    scores = np.array([[0.9, 0.8, 0.1, 0.5], [0.1, 0.2, 0.3, 0.4]])
    truth = np.array([[0, 3], [0, 1]])  # ranks [[0, 2], [3, 2]]
    curves = mv.recall_by_depth(scores, truth)
    assert curves.tolist() == [[0.5, 0.5, 1.0, 1.0], [0.0, 0.0, 0.5, 1.0]]
    assert np.allclose(curves.mean(axis=0)[[0, 2, 3]], mv.recall_curve(scores, truth, [1, 3, 4]))
    assert mv.depth_for_recall(curves, 0.75) == 3
    assert mv.depth_for_recall(curves[[0, 0]], 0.75) == 3 and mv.depth_for_recall(curves[[0, 0]], 0.5) == 1
    assert mv.depth_for_recall(curves[[1, 1]], 0.5) == 3  # a resample of only the second query
    assert mv.depth_for_recall(curves, 0.5, weights=np.array([0, 2])) == 3  # the same, as copy counts
    assert mv.depth_for_recall(curves, 0.6, weights=np.array([3, 1])) == 3  # mean of rows 0, 0, 0, 1
    with pytest.raises(ValueError):
        mv.depth_for_recall(curves, 0.5, weights=np.array([0, 0]))
    with pytest.raises(ValueError):
        mv.depth_for_recall(curves, 0.0)
    rng = np.random.default_rng(3)
    big, top = rng.normal(size=(7, 40)), np.argsort(-rng.normal(size=(7, 40)), axis=1)[:, :5]
    for t in (0.3, 0.6, 0.9):
        brute = next(n for n in range(1, 41) if mv.recall_curve(big, top, [n])[0] >= t - 1e-12)
        assert mv.candidates_needed(big, top, t) == brute
