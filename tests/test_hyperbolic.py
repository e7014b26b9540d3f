"""The Poincaré ball, Riemannian SGD, negative sampling, training and reconstruction metrics."""

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score

from embrepro import hyperbolic as H
from embrepro.data import Hierarchy


def tree_hierarchy(branching: int = 3, depth: int = 3) -> Hierarchy:
    """The transitive closure of a complete tree (root "r", children "r0", "r01", ...)."""
    pairs, frontier = [], ["r"]
    for _ in range(depth):
        nxt = []
        for node in frontier:
            for k in range(branching):
                child = f"{node}{k}"
                nxt.append(child)
                pairs.extend((child, node[:i]) for i in range(1, len(node) + 1))
        frontier = nxt
    return Hierarchy.from_pairs("tree", pairs)


def test_distance_from_the_origin_is_twice_artanh_of_the_norm():
    x = torch.tensor([[0.3, 0.4]], dtype=torch.float64)  # norm 0.5
    d = H.poincare_distance(torch.zeros_like(x), x)
    assert float(d) == pytest.approx(2 * math.atanh(0.5), rel=1e-9)


def test_distance_is_a_metric_and_blows_up_near_the_boundary():
    g = torch.Generator().manual_seed(0)
    pts = (torch.rand(30, 3, generator=g, dtype=torch.float64) - 0.5) * 1.1
    pts = pts / pts.norm(dim=1, keepdim=True).clamp_min(1) * 0.95
    a, b, c = pts[:10], pts[10:20], pts[20:]
    assert torch.allclose(H.poincare_distance(a, b), H.poincare_distance(b, a))
    assert (H.poincare_distance(a, c) <= H.poincare_distance(a, b) + H.poincare_distance(b, c) + 1e-9).all()
    # the same Euclidean gap is far longer near the boundary than at the centre
    near_centre = H.poincare_distance(torch.tensor([0.0, 0.0]), torch.tensor([0.05, 0.0]))
    near_edge = H.poincare_distance(torch.tensor([0.94, 0.0]), torch.tensor([0.99, 0.0]))
    assert near_edge > 10 * near_centre


def test_distance_gradient_matches_finite_differences():
    u = torch.tensor([[0.1, -0.2, 0.3]], dtype=torch.float64, requires_grad=True)
    v = torch.tensor([[-0.5, 0.2, 0.1]], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(H.poincare_distance, (u, v))


def autograd_loss_and_gradient(manifold, W, rows, mask):
    """The training loss through autograd, as the trainer computed it before the gradient was written out."""
    W = W.clone().requires_grad_(True)
    points = W.index_select(0, rows.reshape(-1)).view(*rows.shape, *W.shape[1:])
    d = H.distance(manifold, points[:, :, :1], points[:, :, 1:])
    logits = (-d).masked_fill(~mask.unsqueeze(-1), float("-inf"))
    loss = d[:, :, 0] + torch.logsumexp(logits, dim=2)
    loss.sum().backward()
    return loss.detach(), W.grad


@pytest.mark.parametrize("manifold", H.MANIFOLDS)
def test_hand_written_gradient_equals_autograd(manifold):
    g = torch.Generator().manual_seed(3)
    S, n, L, dim, B, K = 2, 40, 3, 5, 30, 6
    W = (torch.rand(S * n, L, dim, generator=g, dtype=torch.float64) * 2 - 1) * 0.4
    W[0] *= 0.999999 / W[0].norm(dim=-1, keepdim=True)   # at the boundary: the norm clamp is active
    rows = torch.randint(0, S * n, (S, B, 2 + K), generator=g)
    rows[0, 0, 3] = rows[0, 0, 0]                          # a candidate equal to u: the arcosh clamp is active
    rows[1, 1, 0] = 0                                      # the boundary row as u and as a candidate
    rows[1, 2, 4] = 0
    mask = torch.rand(S, B, 1 + K, generator=g) > 0.3
    mask[..., 0] = True
    loss, grad = H.pair_loss_and_gradient(manifold, W, rows, mask)
    ref_loss, ref_grad = autograd_loss_and_gradient(manifold, W, rows, mask)
    assert torch.allclose(loss, ref_loss, rtol=1e-12, atol=1e-12)
    assert torch.allclose(grad, ref_grad, rtol=1e-9, atol=1e-10)
    assert grad.abs().max() > 1  # a real gradient, not zeros
    untouched = torch.ones(S * n, dtype=torch.bool)
    untouched[rows.reshape(-1)] = False
    assert untouched.any() and (grad[untouched] == 0).all()
    with pytest.raises(ValueError, match="manifold"):
        H.pair_loss_and_gradient("sphere", W, rows, mask)


def test_pairwise_distances_agree_with_the_elementwise_distance():
    g = torch.Generator().manual_seed(1)
    pts = (torch.rand(12, 4, generator=g, dtype=torch.float64) - 0.5) * 0.8
    full = H.pairwise_distances("poincare", pts, pts)
    direct = H.poincare_distance(pts.unsqueeze(1), pts.unsqueeze(0))
    assert torch.allclose(full, direct, atol=1e-6)
    assert torch.allclose(H.pairwise_distances("euclidean", pts, pts),
                          H.squared_euclidean(pts.unsqueeze(1), pts.unsqueeze(0)), atol=1e-10)


def test_riemannian_gradient_rescales_by_the_inverse_metric():
    grad = torch.ones(3, 2, dtype=torch.float64)
    x = torch.tensor([[0.0, 0.0], [0.6, 0.0], [0.0, 0.999]], dtype=torch.float64)
    scale = H.riemannian_gradient(x, grad)[:, 0]
    assert scale[0] == pytest.approx(0.25)
    assert scale[1] == pytest.approx((1 - 0.36) ** 2 / 4)
    assert scale[2] < 1e-6  # near the boundary the same Euclidean step moves a point almost nowhere


def test_rsgd_step_never_leaves_the_ball():
    x = torch.tensor([[0.5, 0.5], [0.0, 0.1]], dtype=torch.float64)
    huge = torch.tensor([[-1e9, -1e9], [0.0, -1e9]], dtype=torch.float64)
    H.rsgd_step(x, huge, lr=1.0)
    assert (x.norm(dim=1) <= 1 - H.EPS + 1e-12).all()
    assert x.norm(dim=1).min() == pytest.approx(1 - H.EPS)
    # a small step inside the ball is the plain rescaled gradient step
    y = torch.tensor([[0.2, 0.0]], dtype=torch.float64)
    H.rsgd_step(y, torch.tensor([[1.0, 0.0]], dtype=torch.float64), lr=0.1)
    assert float(y[0, 0]) == pytest.approx(0.2 - 0.1 * (1 - 0.04) ** 2 / 4)


def test_negative_sampler_never_returns_an_ancestor_or_the_node_itself():
    h = tree_hierarchy(2, 4)
    sampler = H.NegativeSampler(torch.as_tensor(h.edges), h.n_nodes)
    ancestors = h.ancestors()
    g = torch.Generator().manual_seed(0)
    u = torch.as_tensor(h.edges[:, 0])
    for by_frequency in (False, True):
        negs, valid = sampler.sample(u, 8, g, by_frequency=by_frequency)
        for node, row, ok in zip(u.tolist(), negs.tolist(), valid.tolist()):
            for neg, fine in zip(row, ok):
                if fine:
                    assert neg != node and neg not in ancestors[node]


def test_reconstruction_matches_a_direct_computation_and_sklearn():
    h = tree_hierarchy(3, 3)
    rng = np.random.default_rng(0)
    emb = rng.uniform(-0.4, 0.4, size=(h.n_nodes, 3))
    got = H.reconstruction(h.edges, emb, "poincare", chunk=7)
    dist = H.pairwise_distances("poincare", torch.as_tensor(emb), torch.as_tensor(emb)).numpy()
    ranks, aps = [], []
    for node, ancestors in h.ancestors().items():
        d = dist[node].copy()
        d[node] = np.inf
        negatives = np.array([j for j in range(h.n_nodes) if j != node and j not in ancestors])
        ranks += [1 + int((d[negatives] < d[a]).sum()) for a in ancestors]
        labels = np.zeros(h.n_nodes)
        labels[list(ancestors)] = 1
        d[node] = 1e12
        aps.append(average_precision_score(labels, -d))
    assert got["mean_rank"] == pytest.approx(np.mean(ranks))
    assert got["map"] == pytest.approx(np.mean(aps))
    assert got["nodes"] == h.n_nodes - 1 and got["pairs"] == len(h)


def test_a_perfect_layout_scores_rank_one_and_map_one():
    # a star: the root at the centre, its three children far from each other
    h = Hierarchy.from_pairs("star", [("b", "a"), ("c", "a"), ("d", "a")])
    emb = np.array([[0.0, 0.0], [0.5, 0.0], [-0.5, 0.0], [0.0, 0.5]])
    for manifold in H.MANIFOLDS:
        got = H.reconstruction(h.edges, emb, manifold)
        assert got["mean_rank"] == 1 and got["map"] == 1


def test_training_a_small_tree_puts_the_root_near_the_origin():
    h = tree_hierarchy(3, 3)  # 40 nodes, 102 pairs
    cfg = H.TrainConfig("poincare", 2, lrs=[1.0], seeds=[0], epochs=60, negatives=10, batch_size=20, burnin=5)
    result = H.train(h.edges, h.n_nodes, cfg)
    emb = result.embedding()
    assert result.weights.shape == (1, 1, h.n_nodes, 2)
    assert np.linalg.norm(emb, axis=1).max() < 1
    assert result.loss[-1, 0, 0] < 0.5 * result.loss[0, 0, 0]
    assert H.reconstruction(h.edges, emb, "poincare")["map"] > 0.8
    norms = np.linalg.norm(emb, axis=1)
    leaves = [i for i, n in enumerate(h.nodes) if len(n) == 4]
    assert norms[h.index("r")] < norms[leaves].mean()


def test_runs_side_by_side_do_not_interact():
    h = tree_hierarchy(2, 3)
    one = H.train(h.edges, h.n_nodes, H.TrainConfig("euclidean", 3, lrs=[0.01], seeds=[5], epochs=3, batch_size=4))
    two = H.train(h.edges, h.n_nodes, H.TrainConfig("euclidean", 3, lrs=[0.01, 0.02], seeds=[5], epochs=3, batch_size=4))
    assert np.allclose(one.weights[0, 0], two.weights[0, 0])
    assert not np.allclose(two.weights[0, 0], two.weights[0, 1])


def _grid(scores):
    """A results table from {(lr, seed): MAP} for one geometry and dimension."""
    import pandas as pd

    return pd.DataFrame([{"geometry": "poincare", "dim": 5, "lr": lr, "seed": s, "MAP": m}
                         for (lr, s), m in scores.items()])


def test_learning_rate_is_chosen_on_the_other_seeds():
    # seed 0 is lucky at lr 1.0; seeds 1 and 2 prefer lr 0.3. Leave-one-out keeps 0.3 for seed 0
    # (chosen by seeds 1 and 2), so seed 0's lucky score does not enter the kept results.
    scores = {(0.3, 0): 0.80, (0.3, 1): 0.82, (0.3, 2): 0.81,
              (1.0, 0): 0.95, (1.0, 1): 0.70, (1.0, 2): 0.72}
    kept = H.select_learning_rates(_grid(scores))
    assert kept["lr"].tolist() == [0.3, 1.0, 1.0]          # seed 1: others (0, 2) mean 0.835 at 1.0 vs 0.805
    assert kept["MAP"].tolist() == pytest.approx([0.80, 0.70, 0.72])
    assert kept["held_out"].all()
    # picking the best mean on all seeds (lr 0.3: 0.81, lr 1.0: 0.79) would keep 0.3 for all: 0.81 mean
    # leave-one-out is not always lower, but it never uses a seed's own score to choose for it
    single = H.select_learning_rates(_grid({(0.3, 0): 0.8, (1.0, 0): 0.9}))
    assert single["lr"].tolist() == [1.0] and not single["held_out"].any()


def test_learning_rate_choice_skips_diverged_runs_and_rejects_bad_tables():
    scores = {(0.3, 0): 0.5, (0.3, 1): 0.6, (3.0, 0): float("nan"), (3.0, 1): float("nan")}
    assert H.select_learning_rates(_grid(scores))["lr"].tolist() == [0.3, 0.3]
    with pytest.raises(ValueError, match="columns"):
        H.select_learning_rates(_grid(scores).drop(columns="seed"))
    doubled = _grid(scores)
    with pytest.raises(ValueError, match="one row"):
        H.select_learning_rates(__import__("pandas").concat([doubled, doubled]))


def test_loss_plateau_measures_the_late_decrease():
    flat = np.r_[np.linspace(5, 1, 50), np.ones(50)]
    assert H.loss_plateau(flat) == pytest.approx(0.0)
    falling = np.linspace(2.0, 1.0, 100)                    # last 10 epochs mean ~1.045, the 10 before ~1.146
    assert H.loss_plateau(falling) == pytest.approx((falling[-20:-10].mean() - falling[-10:].mean()) / falling[-10:].mean())
    assert 0.09 < H.loss_plateau(falling) < 0.1
    assert H.loss_plateau([1.0, float("nan"), 1.0]) == math.inf
    with pytest.raises(ValueError):
        H.loss_plateau([1.0])


# --------------------------------------------------------------------------------------------
# Link prediction
# --------------------------------------------------------------------------------------------

def test_split_links_holds_out_only_pairs_between_inner_nodes():
    h = tree_hierarchy(3, 3)  # root r, 3 + 9 inner nodes, 27 leaves, 102 pairs
    # qualifying pairs: child with descendants (depth 1 or 2) and ancestor not the root: the 9
    # depth-2 nodes with their depth-1 parent
    train, dev, test = H.split_links(h.edges, share=1.0, seed=0)
    assert (len(train), len(dev), len(test)) == (93, 4, 5)
    held = {tuple(e) for e in np.concatenate([dev, test]).tolist()}
    for c, p in held:
        assert len(h.nodes[c]) == 3 and h.nodes[p] == h.nodes[c][:2]
    assert not held & {tuple(e) for e in train.tolist()}
    assert sorted(map(tuple, np.concatenate([train, dev, test]).tolist())) == sorted(map(tuple, h.edges.tolist()))
    # a share of 0 holds out nothing; the same seed gives the same split, another seed another
    train0, dev0, test0 = H.split_links(h.edges, share=0.0)
    assert len(train0) == len(h) and len(dev0) == len(test0) == 0
    a, b = H.split_links(h.edges, 0.5, seed=1), H.split_links(h.edges, 0.5, seed=1)
    assert all(np.array_equal(x, y) for x, y in zip(a, b)) and len(a[1]) + len(a[2]) == 4  # round(4.5) = 4
    with pytest.raises(ValueError):
        H.split_links(h.edges, 1.5)


def test_link_prediction_ranks_held_out_pairs_against_true_negatives_only():
    # a <- b <- c and a <- d (closure: b-a, c-b, c-a, d-a); the pair c-b is held out.
    h = Hierarchy.from_pairs("chain", [("b", "a"), ("c", "b"), ("c", "a"), ("d", "a")])
    at = h.index
    emb = np.zeros((4, 1))
    emb[[at("a"), at("b"), at("c"), at("d")], 0] = [1.3, 1.0, 1.5, 1.2]
    held = np.array([[at("c"), at("b")]])
    # from c: a (0.04) is nearest, then d (0.09), then b (0.25). a is a known ancestor and is left
    # out, d is a true negative ahead of b: rank 2, average precision 1/2.
    got = H.link_prediction(held, h.edges, emb, "euclidean", per_node=True)
    assert got["mean_rank"] == pytest.approx(2.0) and got["map"] == pytest.approx(0.5)
    assert got["nodes"] == 1 and got["pairs"] == 1
    assert got["node_ids"].tolist() == [at("c")] and got["node_ap"].tolist() == pytest.approx([0.5])
    # without leaving a out, a counts against b: rank 3, average precision 1/3
    plain = H.reconstruction(held, emb, "euclidean")
    assert plain["mean_rank"] == pytest.approx(3.0) and plain["map"] == pytest.approx(1 / 3)
    # an empty ignore list changes nothing; a scorer replaces the distance
    assert H.reconstruction(held, emb, "euclidean", ignore=np.zeros((0, 2)))["map"] == pytest.approx(1 / 3)
    by_index = lambda src: torch.arange(4, dtype=torch.float64).expand(len(src), 4)  # noqa: E731
    # ranking by index from c (index 2): a (0), b (1): b is second, behind the known a -> left out
    scored = H.link_prediction(held, h.edges, emb, "euclidean", scorer=by_index)
    assert scored["mean_rank"] == 1 and scored["map"] == 1


def test_best_learning_rate_uses_the_mean_over_seeds_and_breaks_ties_low():
    import pandas as pd

    rows = [("poincare", 5, lr, s, v) for lr, s, v in [
        (0.1, 0, 0.5), (0.1, 1, 0.7), (0.3, 0, 0.65), (0.3, 1, 0.6), (1.0, 0, 0.9), (1.0, 1, float("nan"))]]
    rows += [("euclidean", 5, lr, s, 0.4) for lr in (0.3, 1.0) for s in (0, 1)]  # a tie
    table = pd.DataFrame(rows, columns=["geometry", "dim", "lr", "seed", "dev MAP"])
    best = H.best_learning_rate(table, "dev MAP").set_index("geometry")
    # poincaré: 0.1 -> 0.60, 0.3 -> 0.625, 1.0 diverged on a seed -> worst
    assert best.loc["poincare", "lr"] == 0.3 and best.loc["poincare", "dev MAP"] == pytest.approx(0.625)
    assert best.loc["euclidean", "lr"] == 0.3
    with pytest.raises(ValueError):
        H.best_learning_rate(table.drop(columns="lr"), "dev MAP")


def test_negative_sampler_draws_the_same_with_the_table_and_with_binary_search(monkeypatch):
    h = tree_hierarchy(3, 4)
    edges = torch.as_tensor(h.edges)
    table = H.NegativeSampler(edges, h.n_nodes)
    monkeypatch.setattr(H.NegativeSampler, "DENSE_PAIRS", 0)  # as for the nouns: no table
    search = H.NegativeSampler(edges, h.n_nodes)
    assert table.table is not None and search.table is None
    u = torch.as_tensor(h.edges[:, 0])
    every = torch.arange(h.n_nodes).expand(len(u), h.n_nodes)
    assert torch.equal(table._invalid(u, every), search._invalid(u, every))  # every (node, candidate)
    for by_frequency in (False, True):
        a = table.sample(u, 8, torch.Generator().manual_seed(1), by_frequency=by_frequency)
        b = search.sample(u, 8, torch.Generator().manual_seed(1), by_frequency=by_frequency)
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
