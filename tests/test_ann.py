"""Tests of embrepro.ann (exact/approximate/filtered search) and data.gutenberg_sentences."""

import numpy as np
import pytest

from embrepro import ann


def _unit(n, d, seed=0):
    x = np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_exact_top_k_orders_best_first_and_respects_allowed():
    docs = np.array([[1, 0], [0.8, 0.6], [0, 1], [-1, 0]], dtype=np.float32)
    q = np.array([[1, 0]], dtype=np.float32)
    assert ann.exact_top_k(q, docs, 3).tolist() == [[0, 1, 2]]
    assert ann.exact_top_k(q, docs, 3, allowed=np.array([2, 3])).tolist() == [[2, 3, -1]]
    assert ann.exact_top_k(q, docs, 2, allowed=np.array([], dtype=int)).tolist() == [[-1, -1]]


def test_recall_at_k_counts_overlap_and_ignores_pads():
    truth = np.array([[1, 2, 3, 4], [5, -1, -1, -1], [-1, -1, -1, -1]])
    found = np.array([[4, 9, 1, 8], [7, 8, 9, 5], [1, 2, 3, 4]])
    assert ann.recall_at_k(found, truth, k=4).tolist() == [0.5, 1.0, 1.0]
    assert ann.recall_at_k(found, truth, k=2).tolist() == [0.0, 0.0, 1.0]


def test_filters_hit_their_target_share():
    rng = np.random.default_rng(0)
    categories = rng.integers(0, 200, size=20000)
    values = rng.random(20000)
    for target in (0.01, 0.1, 0.5):
        cat = ann.categorical_filter(categories, target, rng).mean()
        rng_share = ann.range_filter(values, target, rng).mean()
        assert 0.8 * target - 0.005 <= cat <= 1.25 * target + 0.005
        assert abs(rng_share - target) < 0.002


def test_index_searches_agree_with_exact_search():
    docs, queries = _unit(2000, 16, 0), _unit(20, 16, 1)
    truth = ann.exact_top_k(queries, docs, 10)
    assert ann.recall_at_k(ann.search_each(ann.flat_index(docs), queries, 10), truth).mean() == 1.0
    hnsw = ann.hnsw_index(docs, m=16, ef_construction=64)
    hnsw.hnsw.efSearch = 200
    assert ann.recall_at_k(ann.search_each(hnsw, queries, 10), truth).mean() > 0.95
    ivf = ann.ivf_index(docs, nlist=16)
    ivf.nprobe = 16  # all cells: exact
    assert ann.recall_at_k(ann.search_each(ivf, queries, 10), truth).mean() == 1.0
    ivf.nprobe = 1
    assert ann.recall_at_k(ann.search_each(ivf, queries, 10), truth).mean() < 1.0


def test_filtered_searches_return_only_allowed_items():
    import faiss

    docs, queries = _unit(3000, 16, 2), _unit(15, 16, 3)
    rng = np.random.default_rng(0)
    masks = [rng.random(len(docs)) < 0.1 for _ in queries]
    allowed = [np.flatnonzero(m) for m in masks]
    truth = ann.prefilter_search(queries, docs, allowed, 10)
    for i, m in enumerate(masks):
        assert m[truth[i]].all()
        assert truth[i].tolist() == ann.exact_top_k(queries[i], docs[m], 10).ravel().tolist() or \
            truth[i].tolist() == allowed[i][ann.exact_top_k(queries[i], docs[m], 10)].ravel().tolist()
    hnsw = ann.hnsw_index(docs, m=16)
    sels = [ann.selector(m) for m in masks]
    found = ann.filtered_search(hnsw, queries, sels, 10, lambda s: faiss.SearchParametersHNSW(sel=s, efSearch=256))
    assert all(masks[i][found[i][found[i] >= 0]].all() for i in range(len(queries)))
    assert ann.recall_at_k(found, truth).mean() > 0.9
    ivf = ann.ivf_index(docs, nlist=8)
    found = ann.filtered_search(ivf, queries, sels, 10, lambda s: faiss.SearchParametersIVF(sel=s, nprobe=8))
    assert ann.recall_at_k(found, truth).mean() == 1.0
    # post-filtering with a small candidate budget misses most of the allowed neighbours ...
    few = ann.postfilter_search(hnsw, queries, masks, 10, k_prime=10)
    assert all(masks[i][few[i][few[i] >= 0]].all() for i in range(len(queries)))
    assert ann.recall_at_k(few, truth).mean() < 0.5
    # ... and with every item as a candidate it is exact (up to the HNSW graph's own misses)
    assert ann.recall_at_k(ann.postfilter_search(ann.flat_index(docs), queries, masks, 10, k_prime=3000), truth).mean() == 1.0


def test_gutenberg_sentences_are_reproducible_and_labelled():
    from embrepro import data

    try:
        a = data.gutenberg_sentences(300, seed=1)
    except data.DataError:
        pytest.skip("Gutenberg corpus not available")
    b = data.gutenberg_sentences(300, seed=1)
    assert a.texts == b.texts and len(a) == 300
    assert all(6 <= len(t.split()) <= 40 for t in a.texts)
    assert ((a.position >= 0) & (a.position <= 1)).all()
    assert len(a.authors) == 94 and len(set(a.author.tolist())) > 40
    for i in range(0, 300, 50):  # every author name is the folder of its book
        assert a.books[a.book[i]].split("/")[-2] == a.authors[a.author[i]]
    sub = a.subset([3, 5])
    assert sub.texts == [a.texts[3], a.texts[5]] and sub.author.tolist() == a.author[[3, 5]].tolist()


def test_timed_interleaved_runs_every_search_each_repeat():
    calls = []
    searches = {name: (lambda name=name: calls.append(name) or name) for name in "abc"}
    out = ann.timed_interleaved(searches, repeats=4, seed=1, warmup=0)
    assert sorted(out) == ["a", "b", "c"]
    assert all(res == name and len(secs) == 4 for name, (res, secs) in out.items())
    assert sorted(calls) == sorted("abc" * 4)
    assert [calls[i:i + 3] for i in range(0, 12, 3)] != [list("abc")] * 4  # the order is shuffled


def test_timed_interleaved_warms_up_before_timing():
    calls = []
    searches = {name: (lambda name=name: calls.append(name) or len(calls)) for name in "ab"}
    out = ann.timed_interleaved(searches, repeats=5, seed=0, warmup=2)
    assert calls[:4] == ["a", "b", "a", "b"]  # two untimed rounds, in order, before any timed one
    assert len(calls) == 4 + 2 * 5
    assert all(len(secs) == 5 for _, secs in out.values())  # warm-up rounds are not timed
    assert min(res for res, _ in out.values()) > 4  # results come from timed rounds, not the warm-up
    with pytest.raises(ValueError):
        ann.timed_interleaved(searches, repeats=0)


def test_slowdowns_find_a_universal_winner_and_a_reversal():
    fast, slow = np.full(5, 1.0), np.full(5, 3.0)
    one_wins = {"narrow": {"a": fast, "b": slow}, "wide": {"a": fast, "b": slow * 2}}
    s = ann.Slowdowns(one_wins, ["a", "b"])
    assert s.worst()["a"] == (pytest.approx(1 / 3), "narrow", "b")  # a's worst case: still 3x faster
    assert s.worst()["b"] == (pytest.approx(6.0), "wide", "a")
    assert s.smallest() == pytest.approx(1 / 3)  # below 1: a single strategy wins everywhere
    reversal = {"narrow": {"a": fast, "b": slow}, "wide": {"a": slow * 2, "b": fast}}
    assert ann.Slowdowns(reversal, ["a", "b"]).smallest() == pytest.approx(3.0)  # each is beaten somewhere
    # a strategy that cannot compete in a setting is beaten there by any rival that can
    missing = {"narrow": {"a": fast, "b": None}, "wide": {"a": slow, "b": fast}}
    w = ann.Slowdowns(missing, ["a", "b"]).worst()
    assert w["b"] == (np.inf, "narrow", "a") and w["a"] == (pytest.approx(3.0), "wide", "b")
    # a strategy without any competing rival is never beaten
    alone = ann.Slowdowns({"x": {"a": fast, "b": None}}, ["a", "b"])
    assert alone.worst()["a"][0] == 0.0 and alone.smallest() == 0.0


def test_slowdowns_use_the_median_of_paired_repeats_and_resamples():
    a = np.array([1.0, 1.0, 1.0, 1.0, 10.0])  # one repeat hit by a busy spell
    b = np.array([2.0, 2.0, 2.0, 2.0, 2.0])
    s = ann.Slowdowns({"only": {"a": a, "b": b}}, ["a", "b"])
    assert s.worst()["a"][0] == pytest.approx(0.5) and s.worst()["b"][0] == pytest.approx(2.0)
    assert s.worst(np.array([4, 4, 4]))["a"][0] == pytest.approx(5.0)  # a resample of the busy repeat
    with pytest.raises(ValueError):
        ann.Slowdowns({"x": {"a": a, "b": b[:3]}}, ["a", "b"])


def test_faiss_prefilter_matches_the_numpy_prefilter():
    import faiss

    faiss.omp_set_num_threads(1)
    docs, queries = _unit(4000, 24, 5), _unit(25, 24, 6)
    rng = np.random.default_rng(3)
    masks = [rng.random(len(docs)) < share for share in np.linspace(0.002, 0.6, len(queries))]
    masks[0][:] = False  # an empty filter: nothing to return
    masks[0][:3] = True  # ... or fewer items than k: the rest is padded with -1
    numpy_ids = ann.prefilter_search(queries, docs, [np.flatnonzero(m) for m in masks], 10)
    faiss_ids = ann.prefilter_faiss(ann.flat_index(docs), queries, [ann.selector(m) for m in masks], 10)
    assert faiss_ids.tolist() == numpy_ids.tolist()
    assert faiss_ids[0, 3:].tolist() == [-1] * 7 and sorted(faiss_ids[0, :3].tolist()) == [0, 1, 2]
    # the selector really restricts the scan: without it the answers differ
    unfiltered = ann.search_each(ann.flat_index(docs), queries[1:], 10)
    assert unfiltered.tolist() != faiss_ids[1:].tolist()


def test_random_filter_and_survivor_arithmetic():
    rng = np.random.default_rng(0)
    m = ann.random_filter(1000, 37, rng)
    assert m.dtype == bool and m.sum() == 37
    with pytest.raises(ValueError):
        ann.random_filter(10, 11, rng)
    # hand-computed: k' = 100 of n = 1000, filters of 10 and 30 items (s = 0.01 and 0.03)
    mean, se = ann.expected_survivors(100, [10, 30], 1000)
    assert mean == pytest.approx((1.0 + 3.0) / 2)
    var = 100 * 0.01 * 0.99 * 900 / 999 + 100 * 0.03 * 0.97 * 900 / 999
    assert se == pytest.approx(np.sqrt(var) / 2)
    # all candidates survive an all-pass filter, with no spread
    assert ann.expected_survivors(50, [1000], 1000) == (pytest.approx(50.0), 0.0)
    # simulated: candidates fixed, filters drawn at random -> the mean lands within a few SE
    cands = np.tile(np.arange(200), (400, 1))
    masks = [ann.random_filter(5000, 250, rng) for _ in range(400)]
    found, survivors = ann.postfilter_from_candidates(cands, masks, 10)
    mean, se = ann.expected_survivors(200, [250] * 400, 5000)
    assert mean == pytest.approx(10.0) and abs(survivors.mean() - mean) < 4 * se
    assert all(masks[i][found[i][found[i] >= 0]].all() for i in range(400))


def test_postfilter_from_candidates_keeps_order_and_counts():
    cands = np.array([[5, 3, 9, 1, -1], [2, 4, 6, 8, 0]])
    masks = [np.isin(np.arange(10), [1, 9, 5]), np.zeros(10, dtype=bool)]
    found, survivors = ann.postfilter_from_candidates(cands, masks, 2)
    assert found.tolist() == [[5, 9], [-1, -1]] and survivors.tolist() == [3, 0]


def test_distance_counts_follow_the_index_structure():
    import faiss

    faiss.omp_set_num_threads(1)
    docs, queries = _unit(3000, 16, 7), _unit(10, 16, 8)
    assert ann.counted_distances(ann.flat_index(docs), queries, 10)["distances"] == 3000
    assert ann.predicted_distances("exact", 3000) == 3000
    ivf = ann.ivf_index(docs, nlist=30)
    # all cells scanned: every item once, plus the 30 centroids
    full = ann.counted_distances(ivf, queries, 10, faiss.SearchParametersIVF(nprobe=30))
    assert full["distances"] == 3000 + 30 == ann.predicted_distances("IVF", 3000, nlist=30, nprobe=30)
    few = ann.counted_distances(ivf, queries, 10, faiss.SearchParametersIVF(nprobe=3))["distances"]
    assert 30 < few < 30 + 3000 / 3  # three cells of about 100 items each, not the whole collection
    assert ann.predicted_distances("IVF", 3000, nlist=30, nprobe=3) == 330
    hnsw = ann.hnsw_index(docs, m=8, ef_construction=40)
    small = ann.counted_distances(hnsw, queries, 10, faiss.SearchParametersHNSW(efSearch=16))
    large = ann.counted_distances(hnsw, queries, 10, faiss.SearchParametersHNSW(efSearch=128))
    assert 0 < small["distances"] < large["distances"] < 3000
    assert large["hops"] >= 128 * 0.5  # the walk expands on the order of efSearch nodes ...
    assert large["distances"] <= ann.predicted_distances("HNSW", 3000, ef=large["hops"], m=8)  # ... <= 2m each
    # by hand: ln 3000 / ln 8 = 3.850 upper layers x 8 neighbours + 10 expansions x 16 neighbours
    assert ann.predicted_distances("HNSW", 3000, ef=10, m=8) == pytest.approx(190.80, abs=0.01)
    with pytest.raises(ValueError):
        ann.predicted_distances("IVF", 10, nlist=4, nprobe=5)


def test_masked_exact_top_k_equals_the_prefilter():
    docs, queries = _unit(1500, 12, 9), _unit(12, 12, 10)
    rng = np.random.default_rng(1)
    masks = [rng.random(len(docs)) < share for share in np.linspace(0.0, 0.9, len(queries))]
    masked = ann.exact_top_k_masked(queries, docs, masks, 10)
    assert masked.tolist() == ann.prefilter_search(queries, docs, [np.flatnonzero(m) for m in masks], 10).tolist()
    assert masked[0].tolist() == [-1] * 10  # an empty filter
    assert ann.exact_top_k_masked(queries, docs, [np.ones(len(docs), bool)] * 12, 10).tolist() == \
        ann.exact_top_k(queries, docs, 10).tolist()
