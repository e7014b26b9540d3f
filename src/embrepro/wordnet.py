"""The WordNet noun hierarchy: NLTK-style synset names and transitive closures.

Built on :func:`embrepro.data.load_wordnet_synsets` (the book's own parser of WordNet 3.0's
``dict/data.*`` files, no NLTK download needed). Synsets are named the way NLTK names them
(``dog.n.01``: the synset's first lemma, lower-cased, the part of speech, and the synset's sense
number for that lemma in ``dict/index.noun``), so that the closures below match files made with
NLTK, such as those of the Poincaré-embeddings code.

>>> names = noun_names()                                  # doctest: +SKIP
>>> closure = noun_closure()                              # doctest: +SKIP
>>> len(closure), len({n for pair in closure for n in pair})   # doctest: +SKIP
(743241, 82115)
>>> mammals = subtree_closure(closure, "mammal.n.01", MAMMAL_FILTER)   # 6,540 pairs, 1,180 nodes
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from embrepro.data import Synset, fetch, load_wordnet_synsets

HYPERNYM, INSTANCE_HYPERNYM = "@", "@i"

# The Poincaré-embeddings script (facebookresearch/poincare-embeddings, wordnet/mammals_filter.txt)
# drops the mammal-closure pairs for which pandas' ``str.match`` finds one of its patterns in
# "child parent". ``match`` anchors at the start of the string, so of its 24 patterns only the two
# that start with ``^`` can ever match; these two are what shape the published mammal closure.
MAMMAL_FILTER = (r"^tusker.n.01", r"^female_mammal.n.01")


def noun_names(synsets: dict[tuple[str, int], Synset] | None = None) -> dict[int, str]:
    """Noun synset offset -> NLTK-style name (``dog.n.01``)."""
    synsets = synsets if synsets is not None else load_wordnet_synsets("n")
    senses: dict[str, list[int]] = {}
    with open(fetch("wordnet", "dict/index.noun"), encoding="utf-8") as fh:
        for line in fh:
            if line.startswith(" "):
                continue  # licence header
            cols = line.split()
            n_synsets, n_pointers = int(cols[2]), int(cols[3])
            first = 4 + n_pointers + 2
            senses[cols[0]] = [int(x) for x in cols[first:first + n_synsets]]
    names = {}
    for (pos, offset), synset in synsets.items():
        if pos == "n":
            lemma = synset.lemmas[0].lower()
            names[offset] = f"{lemma}.n.{senses[lemma].index(offset) + 1:02d}"
    return names


def noun_closure(synsets: dict[tuple[str, int], Synset] | None = None) -> list[tuple[str, str]]:
    """The transitive closure of WordNet's noun hierarchy as sorted (hyponym, hypernym) names.

    Follows hypernym and instance-hypernym pointers, as the Poincaré-embeddings script
    ``wordnet/transitive_closure.py`` does with NLTK (an instance gets its instance hypernyms and
    all of their hypernyms). Each pair appears once; no synset is its own ancestor.
    """
    synsets = synsets if synsets is not None else load_wordnet_synsets("n")
    names = noun_names(synsets)
    parents = {offset: [off for sym, pos, off in s.pointers if pos == "n" and sym in (HYPERNYM, INSTANCE_HYPERNYM)]
               for (p, offset), s in synsets.items() if p == "n"}
    memo: dict[int, frozenset[int]] = {}

    def up(offset: int) -> frozenset[int]:
        # ancestors, memoised; the noun hierarchy is about 20 levels deep, so recursion is safe
        if offset not in memo:
            found: set[int] = set()
            for parent in parents[offset]:
                found.add(parent)
                found |= up(parent)
            memo[offset] = frozenset(found)
        return memo[offset]

    return sorted((names[o], names[a]) for o in parents for a in up(o))


def subtree_closure(closure: Iterable[tuple[str, str]], root: str,
                    drop: Iterable[str] = ()) -> list[tuple[str, str]]:
    """The closure cut to ``root`` and its descendants, as the Poincaré script cuts the mammals.

    Keeps the pairs whose two ends both have ``root`` as an ancestor (or are ``root``), then drops
    the pairs for which one of the regular expressions in ``drop`` matches at the start of
    ``"child parent"`` (``MAMMAL_FILTER`` for ``mammal.n.01``).
    """
    closure = list(closure)
    members = {child for child, parent in closure if parent == root} | {root}
    patterns = [re.compile(p) for p in drop]
    return [(c, p) for c, p in closure
            if c in members and p in members and not any(r.match(f"{c} {p}") for r in patterns)]
