"""The WordNet noun hierarchy for chapters: NLTK-style synset names and transitive closures.

The code lives in :mod:`embrepro.data.lexicons`, beside the WordNet 3.0 parser it is built on
(so that loading the cached noun closure needs no import back into this module); this module
gives chapters the short names they use:

>>> from embrepro import wordnet
>>> closure = wordnet.noun_closure()                          # doctest: +SKIP
>>> len(closure), len({n for pair in closure for n in pair})  # doctest: +SKIP
(743241, 82115)
>>> mammals = wordnet.subtree_closure(closure, "mammal.n.01", wordnet.MAMMAL_FILTER)  # doctest: +SKIP

Synsets are named the way NLTK names them (``dog.n.01``: the synset's first lemma, lower-cased,
the part of speech, and the synset's sense number for that lemma in ``dict/index.noun``); pairs
are (hyponym, hypernym) names.
"""

from embrepro.data.lexicons import (HYPERNYM, INSTANCE_HYPERNYM, MAMMAL_FILTER, Synset, noun_closure, noun_names,
                                    subtree_closure)

__all__ = ["HYPERNYM", "INSTANCE_HYPERNYM", "MAMMAL_FILTER", "Synset", "noun_closure", "noun_names", "subtree_closure"]
