"""Weak pairs, BM25 negative mining with and without the false-negative filter, budgets and intervals."""

import numpy as np
import pytest

from embrepro import weak_pairs as wp


def test_truncate_words():
    assert wp.truncate_words("a b  c d", 2) == "a b"
    assert wp.truncate_words("a b c", None) == "a b c"
    with pytest.raises(ValueError):
        wp.truncate_words("a", 0)


def test_title_abstract_pairs_exclude_documents_and_skip_missing_titles():
    corpus = {"1": {"title": "Cats purr", "text": "Purring in cats is studied here."},
              "2": {"title": "", "text": "No title."},
              "3": {"title": "Dogs bark", "text": "Barking dogs."},
              "4": {"title": "Held out", "text": "An evaluation document."}}
    pairs = wp.title_abstract_pairs(corpus, exclude={"4"}, max_words=3)
    assert pairs.anchors == ["Cats purr", "Dogs bark"]
    assert pairs.positives == ["Purring in cats", "Barking dogs."]
    assert pairs.group == [("doc:1", 0), ("doc:3", 0)]
    assert pairs.counts() == {"title-abstract": 2}


def _toy_corpus():
    # two books: 10 and 6 sentences; sentence text names its book and line
    lines = [f"b0 s{i}" for i in range(10)] + [f"b1 s{i}" for i in range(6)]
    return lines, [10, 6]


def test_gutenberg_blocks_stay_inside_one_book_and_never_overlap():
    lines, sizes = _toy_corpus()
    blocks = wp.gutenberg_blocks(3, 3, seed=3, lines=lines, book_sizes=sizes)
    assert blocks == wp.gutenberg_blocks(3, 3, seed=3, lines=lines, book_sizes=sizes)  # deterministic
    used = set()
    for book, start, sentences in blocks:
        assert len(sentences) == 3
        assert all(s.startswith(f"b{book} ") for s in sentences)          # one book
        assert sentences == [f"b{book} s{start + j}" for j in range(3)]   # consecutive
        span = {(book, start + j) for j in range(3)}
        assert not span & used                                            # no overlap
        used |= span
    with pytest.raises(ValueError):
        wp.gutenberg_blocks(4, 4, lines=lines, book_sizes=sizes)          # books of 10 and 6 hold 3 blocks of 4
    with pytest.raises(ValueError):
        wp.gutenberg_blocks(1, 4, lines=lines, book_sizes=[10, 5])        # sizes do not add up


def test_neighbour_and_inverse_cloze_pairs():
    blocks = [(0, 4, ["s4", "s5", "s6", "s7"])]
    nb = wp.neighbour_pairs(blocks, 2)
    assert nb.anchors == ["s4 s5"] and nb.positives == ["s6 s7"] and nb.group == [("book:0", 2)]
    with pytest.raises(ValueError):
        wp.neighbour_pairs(blocks, 3)
    ict = wp.inverse_cloze_pairs([(1, 0, ["x1", "x2", "x3"])] * 20, seed=0)
    for a, p in zip(ict.anchors, ict.positives):
        assert a not in p.split()                       # the sentence is removed from its passage
        assert sorted(p.split() + [a]) == ["x1", "x2", "x3"]
    assert len(set(ict.anchors)) > 1                    # the removed sentence varies


def _mining_case():
    # pair 0's anchor; candidates: 1 is a neighbour passage of the same book (score 9),
    # 2 scores above the own positive's 0.95 x 5 (score 4.9), 3 is a fair negative (score 3)
    pairs = wp.WeakPairs(anchors=["a0", "a1", "a2", "a3"], positives=["p0", "p1", "p2", "p3"],
                         source=["neighbours"] * 4,
                         group=[("book:7", 10), ("book:7", 11), ("book:1", 0), ("book:2", 5)])
    table = {"a0": [5.0, 9.0, 4.9, 3.0], "a1": [1.0, 6.0, 2.0, 0.5],
             "a2": [0.0, 0.0, 0.0, 0.0], "a3": [2.0, 1.0, 0.0, 4.0]}
    return pairs, lambda anchor: np.array(table[anchor])


def test_mining_unfiltered_takes_the_best_other_positive_even_a_neighbour():
    pairs, score = _mining_case()
    mined = wp.mine_bm25_negatives(pairs, filtered=False, score_fn=score)
    assert mined.negatives[0] == "p1"          # the neighbour: a false negative
    assert mined.negatives[1] == "p2"
    assert mined.negatives[3] == "p0"
    assert mined.fallback == 1                 # a2 scores nothing: random stand-in
    assert mined.negatives[2] != "p2"


def test_consistency_filter_keeps_pairs_whose_positive_ranks_high():
    pairs, score = _mining_case()
    mined = wp.mine_bm25_negatives(pairs, filtered=False, score_fn=score)
    # own positive ranks: a0 -> p0 is 2nd (p1 scores 9), a1 -> 1st, a2 scores nothing (last), a3 -> 1st
    assert mined.own_rank == [1, 0, 3, 0]
    assert wp.consistency_filter(mined, top_k=1).tolist() == [1, 3]
    assert wp.consistency_filter(mined, top_k=2).tolist() == [0, 1, 3]
    with pytest.raises(ValueError):
        wp.consistency_filter(mined, top_k=0)


def test_mining_filter_drops_neighbours_and_too_close_candidates():
    pairs, score = _mining_case()
    mined = wp.mine_bm25_negatives(pairs, filtered=True, ratio=0.95, window=2, score_fn=score)
    assert mined.negatives[0] == "p3"          # p1 (neighbour) and p2 (4.9 >= 4.75) removed
    assert mined.negatives[1] == "p2"          # p2 (2 < 0.95 x 6) ranks above a1's neighbour p0
    assert (mined.dropped_neighbour, mined.dropped_score, mined.fallback) == (1, 1, 1)
    assert mined.rank[0] == 3
    loose = wp.mine_bm25_negatives(pairs, filtered=True, ratio=1.0, window=2, score_fn=score)
    assert loose.negatives[0] == "p2"          # 4.9 < 1.0 x 5 passes a looser ratio


def test_bm25_mining_on_real_text():
    pairs = wp.WeakPairs(
        anchors=["protein folding in yeast", "galaxy rotation curves", "yeast protein misfolding stress",
                 "stellar rotation"],
        positives=["folding of proteins in yeast cells", "rotation curves of spiral galaxies",
                   "misfolded protein stress response in yeast", "rotation of stars measured"],
        source=["title-abstract"] * 4, group=[(f"doc:{i}", 0) for i in range(4)])
    mined = wp.mine_bm25_negatives(pairs, filtered=False)
    assert mined.negatives[0] == "misfolded protein stress response in yeast"
    assert mined.negatives[1] == "rotation of stars measured"
    with_neg = pairs.with_negatives(mined.negatives)
    assert with_neg.examples(hard_negatives=True)[0] == (pairs.anchors[0], pairs.positives[0], mined.negatives[0])
    with pytest.raises(ValueError):
        pairs.examples(hard_negatives=True)


def test_examples_seen_budget():
    assert wp.examples_seen_budget(4096, [16, 64, 1024]) == {16: 256, 64: 64, 1024: 4}
    with pytest.raises(ValueError):
        wp.examples_seen_budget(1000, [16, 64])     # 64 does not divide 1000
    with pytest.raises(ValueError):
        wp.examples_seen_budget(64, [1])


def test_query_difference_sides_and_seeds():
    queries = [str(i) for i in range(40)]
    rng = np.random.default_rng(0)
    base = {q: float(v) for q, v in zip(queries, rng.uniform(0, 100, 40))}
    better = [{q: base[q] + 5 + rng.normal(0, 1) for q in queries} for _ in range(3)]
    iv = wp.query_difference(better, [base], n_boot=500)
    assert iv.low > 0 and abs(iv.estimate - 5) < 1
    worse = wp.query_difference([base], better[:1], n_boot=500)
    assert worse.high < 0
    # seeds that disagree widely make the seed interval the wider one
    noisy = [{q: base[q] + d for q in queries} for d in (-20.0, 25.0, 10.0)]
    iv = wp.query_difference(noisy, [base], n_boot=500)
    assert "seeds" in iv.method and iv.low < 0 < iv.high


def test_trend_interval_recovers_a_slope_and_a_flat_null():
    queries = [str(i) for i in range(30)]
    rng = np.random.default_rng(1)
    noise = rng.normal(0, 3, 30)
    rising = {b: [{q: 40 + 2 * np.log2(b) + noise[k] for k, q in enumerate(queries)}] for b in (16, 64, 256, 1024)}
    iv = wp.trend_interval(rising, n_boot=300)
    assert iv.estimate == pytest.approx(2.0) and iv.low > 0
    flat = {b: [{q: 40 + rng.normal(0, 3) for q in queries}] for b in (16, 64, 256, 1024)}
    iv = wp.trend_interval(flat, n_boot=300)
    assert iv.low < 0.5 and abs(iv.estimate) < 1.5     # no trend: a positive bar cannot be cleared
    with pytest.raises(ValueError):
        wp.trend_interval({16: rising[16]})


def test_cached_mnrl_equals_mnrl_on_a_small_encoder():
    """GradCache is exact: the cached loss with small mini-batches gives MNRL's loss and gradients."""
    import torch
    from sentence_transformers.sentence_transformer import losses

    from embrepro import siamese

    words = ["<pad>"] + [f"w{i}" for i in range(30)]
    matrix = np.random.default_rng(0).normal(size=(31, 8)).astype(np.float32)
    matrix[0] = 0
    texts_a = [" ".join(f"w{(i * 7 + j) % 30}" for j in range(4)) for i in range(12)]
    texts_b = [" ".join(f"w{(i * 5 + j) % 30}" for j in range(3)) for i in range(12)]
    grads = []
    for cached in (False, True):
        model = siamese.build_encoder(words, matrix, hidden=4, seed=0)
        loss_fn = (losses.CachedMultipleNegativesRankingLoss(model, mini_batch_size=5) if cached
                   else losses.MultipleNegativesRankingLoss(model))
        feats = [model.preprocess(texts_a), model.preprocess(texts_b)]
        loss = loss_fn(feats, None)
        loss.backward()
        grads.append((float(loss.detach()), torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])))
    assert grads[0][0] == pytest.approx(grads[1][0], rel=1e-5)
    assert torch.allclose(grads[0][1], grads[1][1], atol=1e-6)


def test_bag_encoder_starts_as_averaged_vectors_and_trains():
    import torch
    from sentence_transformers.sentence_transformer import losses

    from embrepro import contrastive

    words = ["<pad>", "cat", "dog", "sat", "ran"]
    matrix = np.array([[0, 0], [1, 0], [0, 1], [1, 1], [2, 0]], dtype=np.float32)
    model = wp.bag_encoder(words, matrix)
    got = model.encode(["cat sat", "dog"], convert_to_numpy=True)
    assert np.allclose(got, [[1.0, 0.5], [0.0, 1.0]])          # the mean of the rows
    frozen = wp.bag_encoder(words, matrix, trainable=False)
    assert not any(p.requires_grad for p in frozen.parameters())
    before = model[0].emb_layer.weight.detach().clone()
    ex = [("cat sat", "dog ran"), ("dog", "cat"), ("ran", "sat dog")]
    contrastive.train_steps(model, losses.CachedMultipleNegativesRankingLoss(model, mini_batch_size=2), ex,
                            steps=2, batch_size=3, lr=0.1, progress=False)
    assert not torch.allclose(before, model[0].emb_layer.weight.detach())
