"""Hierarchies: the mammal-closure loader, transitive reduction, and closures regenerated from WordNet."""

import numpy as np
import pytest

from embrepro import data, wordnet
from embrepro.data import Hierarchy


def test_hierarchy_from_pairs_and_its_transitive_reduction():
    h = Hierarchy.from_pairs("toy", [("c", "b"), ("c", "a"), ("b", "a"), ("d", "a"), ("c", "b")])
    assert h.nodes == ["a", "b", "c", "d"] and len(h) == 4  # the duplicate pair is kept once
    assert h.edges.dtype == np.int64 and h.edges.shape == (4, 2)
    direct = {(h.nodes[c], h.nodes[p]) for c, p in h.direct_edges()}
    assert direct == {("c", "b"), ("b", "a"), ("d", "a")}
    assert h.ancestors()[h.index("c")] == {h.index("a"), h.index("b")}


def test_mammal_closure_has_the_published_size_and_structure():
    h = data.load_mammal_closure()
    assert (h.n_nodes, len(h)) == (1180, 6540)
    mammal = h.index("mammal.n.01")
    ancestors = h.ancestors()
    assert mammal not in ancestors  # the root has no hypernym
    assert all(mammal in up for up in ancestors.values())
    assert {h.nodes[a] for a in ancestors[h.index("dog.n.01")]} == {
        "canine.n.02", "carnivore.n.01", "placental.n.01", "mammal.n.01"}
    # the reduction keeps one or more direct parents per node and nothing implied
    assert len(h.direct_edges()) >= h.n_nodes - 1


def test_mammal_closure_tsv_encodes_the_same_pairs():
    h = data.load_mammal_closure()
    names = data.fetch("poincare", "mammal_name.csv").read_text(encoding="utf-8").split()
    with open(data.fetch("poincare", "mammal_closure.tsv"), encoding="utf-8") as fh:
        tsv = {(names[int(a)], names[int(b)]) for a, b, _ in (line.split() for line in fh)}
    assert tsv == {(h.nodes[c], h.nodes[p]) for c, p in h.edges}


@pytest.mark.slow
def test_noun_closure_regenerated_from_wordnet_matches_the_paper_and_the_mammal_file():
    closure = wordnet.noun_closure()
    # Nickel & Kiela (2017), Section 4: 82,115 nouns and 743,241 hypernymy relations
    assert len(closure) == 743241
    assert len({n for pair in closure for n in pair}) == 82115
    assert ("dog.n.01", "entity.n.01") in set(closure)
    mammals = wordnet.subtree_closure(closure, "mammal.n.01", wordnet.MAMMAL_FILTER)
    h = data.load_mammal_closure()
    assert set(mammals) == {(h.nodes[c], h.nodes[p]) for c, p in h.edges}
    nouns = data.load_noun_closure()  # the same closure, cached, as a Hierarchy
    assert (nouns.n_nodes, len(nouns)) == (82115, 743241)
    unfiltered = wordnet.subtree_closure(closure, "mammal.n.01")
    assert set(unfiltered) - set(mammals) == {("tusker.n.01", "mammal.n.01"),
                                              ("female_mammal.n.01", "mammal.n.01")}
