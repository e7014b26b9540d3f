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


# ---- the paper's single-vector heuristic: token neighbours, unioned per query ---------------

def _toy_token_search(k_tokens, chunk_vectors=32768):
    # one query with tokens q1 = (1, 0), q2 = (0, 1); similarities are the coordinates
    q = mv.Ragged.from_list([np.array([[1, 0], [0, 1]], np.float32)])
    d = mv.Ragged.from_list([np.array([[0.9, 0.0], [0.8, 0.0]], np.float32),   # D0: q1 0.9, 0.8; q2 0, 0
                             np.array([[0.7, 0.1]], np.float32),               # D1: q1 0.7;      q2 0.1
                             np.array([[0.0, 0.5], [0.2, 0.3]], np.float32)])  # D2: q1 0, 0.2;   q2 0.5, 0.3
    return mv.token_search(q, d, k_tokens=k_tokens, chunk_vectors=chunk_vectors)


def test_token_search_by_hand():
    # q1's list: 0.9 (D0), 0.8 (D0), 0.7 (D1), 0.2 (D2), 0 (D2) -> D0 joins at k'=1, D1 at 3, D2 at 4
    # q2's list: 0.5 (D2), 0.3 (D2), 0.1 (D1), 0 (D0), 0 (D0)   -> D2 at 1, D1 at 3, D0 at 4
    for chunk in (32768, 1, 2):  # one chunk, one document per chunk, uneven chunks
        s = _toy_token_search(k_tokens=5, chunk_vectors=chunk)
        assert s.first_rank.tolist() == [[1, 3, 1]]
        assert np.allclose(s.chamfer, [[0.9, 0.8, 0.7]])
        assert np.allclose(s.best, [[0.9, 0.7, 0.5]])
        assert s.union_size(1).tolist() == [2] and s.union_size(2).tolist() == [2] and s.union_size(3).tolist() == [3]
        assert np.argsort(-s.scores()[0], kind="stable").tolist() == [0, 2, 1]  # same k': higher best first
    s = _toy_token_search(k_tokens=1)  # D1 is not within any token's nearest 1
    assert s.first_rank.tolist() == [[1, 2, 1]] and s.union_size(1).tolist() == [2]
    assert s.query_tokens.tolist() == [2]


def test_token_search_unions_match_brute_force():
    rng = np.random.default_rng(5)
    q, d = clustered_sets(rng, 4), clustered_sets(rng, 25)
    k = 12
    s = mv.token_search(q, d, k_tokens=k, chunk_vectors=9)
    owner = d.owner
    for i in range(len(q)):
        sims = q[i] @ d.vectors.T  # (query tokens, all document tokens)
        order = np.argsort(-sims, axis=1, kind="stable")
        for kk in (1, 3, 7, k):
            union = set(owner[order[:, :kk]].ravel().tolist())
            assert s.union_size(kk)[i] == len(union)
            assert set(np.flatnonzero(s.first_rank[i] <= kk).tolist()) == union
    assert np.allclose(s.chamfer, mv.chamfer_scores(q, d), atol=1e-5)
    assert s.first_rank.max() <= k + 1


# ---- FDE variants: nested k_sim, the official code's sparse projection -----------------------

def test_fde_matches_a_direct_reference_with_projection():
    rng = np.random.default_rng(6)
    sets = clustered_sets(rng, 3, dim=8, lo=4, hi=9)
    cfg = mv.FDEConfig(reps=2, k_sim=2, d_proj=3, seed=4)
    q_fde, d_fde = mv.fde_encode(sets, cfg, "query"), mv.fde_encode(sets, cfg, "doc", fill_empty=False)
    for rep in range(2):
        planes, proj = mv._repetition(8, cfg, rep)
        for i in range(3):
            codes = mv.simhash_codes(sets[i], planes)
            for part in range(4):
                members = sets[i][codes == part]
                at = slice(rep * 12 + part * 3, rep * 12 + part * 3 + 3)
                assert np.allclose(q_fde[i, at], members.sum(axis=0) @ proj if len(members) else 0, atol=1e-5)
                assert np.allclose(d_fde[i, at], members.mean(axis=0) @ proj if len(members) else 0, atol=1e-5)


def test_fde_encode_many_equals_one_at_a_time():
    rng = np.random.default_rng(7)
    sets = clustered_sets(rng, 12, dim=16)
    configs = [mv.FDEConfig(reps=3, k_sim=k, d_proj=d, seed=2) for k, d in [(2, 4), (4, 4), (3, 8), (4, None)]]
    for kind in ("query", "doc"):
        together = mv.fde_encode_many(sets, configs, kind)
        for cfg, fde in zip(configs, together):
            alone = mv.fde_encode(sets, cfg, kind)  # aggregated at its own k_sim, not coarsened from 4
            assert fde.shape == alone.shape == (12, cfg.dim(16))
            assert np.allclose(fde, alone, atol=1e-5)
    with pytest.raises(ValueError):
        mv.fde_encode_many(sets, [configs[0], mv.FDEConfig(reps=4, k_sim=2, d_proj=4, seed=2)], "doc")


def test_hyperplanes_are_nested_across_k_sim():
    a, b = mv._planes(16, 0, 3, 2), mv._planes(16, 0, 3, 5)
    assert a.shape == (16, 2) and b.shape == (16, 5) and np.array_equal(a, b[:, :2])
    assert not np.allclose(mv._planes(16, 0, 4, 2), a)  # another repetition draws other planes


def test_ams_projection_is_a_signed_sparse_sketch():
    p = mv._projection(50, 0, 0, 8, "ams")
    assert ((p != 0).sum(axis=1) == 1).all() and set(np.unique(p[p != 0])) <= {-1.0, 1.0}
    dense = mv._projection(50, 0, 0, 8, "dense")
    assert np.allclose(np.abs(dense), 1 / np.sqrt(8))
    # both keep inner products in expectation: average over many repetitions
    rng = np.random.default_rng(8)
    x, y = rng.standard_normal(50).astype(np.float32), rng.standard_normal(50).astype(np.float32)
    for kind in ("ams", "dense"):
        est = np.mean([(x @ mv._projection(50, 9, r, 8, kind)) @ (y @ mv._projection(50, 9, r, 8, kind)) for r in range(3000)])
        assert est == pytest.approx(float(x @ y), abs=0.1 * float(np.linalg.norm(x) * np.linalg.norm(y)))
    with pytest.raises(ValueError):
        mv.FDEConfig(projection="gaussian")


def test_pq_roundtrip_sizes_and_exact_codebook():
    rng = np.random.default_rng(9)
    x = rng.standard_normal((300, 64)).astype(np.float32)
    decoded, nbytes = mv.pq_roundtrip(x, group=8, nbits=8, seed=0)
    assert nbytes == 8 and x.nbytes / len(x) / nbytes == 32  # PQ-256-8: 32 times smaller
    err = np.linalg.norm(decoded - x) / np.linalg.norm(x)
    assert 0.05 < err < 0.9  # lossy, but far better than nothing
    again, _ = mv.pq_roundtrip(x, group=8, nbits=8, seed=0)
    assert np.array_equal(decoded, again)
    # four distinct rows and four centroids per group: k-means finds them, decoding is exact
    few = np.repeat(rng.standard_normal((4, 16)).astype(np.float32), 50, axis=0)
    exact, nb = mv.pq_roundtrip(few, group=4, nbits=2, seed=0)
    assert nb == 1 and np.allclose(exact, few, atol=1e-5)
    with pytest.raises(ValueError):
        mv.pq_roundtrip(x, group=7)


def test_spearman_by_row_matches_scipy_with_ties():
    rng = np.random.default_rng(10)
    a = rng.integers(0, 5, size=(4, 30)).astype(float)  # many ties
    b = rng.normal(size=(4, 30))
    got = mv.spearman_by_row(a, b)
    assert np.allclose(got, [spearmanr(a[i], b[i]).statistic for i in range(4)])
    assert mv.spearman_by_row(b, b) == pytest.approx(np.ones(4)) and mv.spearman_by_row(-b, b) == pytest.approx(-np.ones(4))
