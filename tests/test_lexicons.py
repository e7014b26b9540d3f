"""Semantic lexicons for retrofitting: the lexicon format, PPDB/FrameNet and WordNet regenerated."""

import pytest

from embrepro import data

ENTITY = ("00001740 03 n 01 entity 0 003 ~ 00001930 n 0000 ~ 00002137 n 0000 ~ 04424418 n 0000 "
          "| that which is perceived or known or inferred to have its own distinct existence")
GALORE = ("00014358 00 s 02 abounding 0 galore(ip) 0 001 & 00013887 a 0000 "
          "| existing in abundance; \"abounding confidence\"; \"whiskey galore\"")


def test_lexicon_lines_are_lower_cased_merged_and_free_of_self_links():
    lexicon = data.lexicon_from_lines("demo", ["Fast quick rapid fast", "fast speedy quick", "", "slow Sluggish"])
    assert lexicon.neighbours == {"fast": ["quick", "rapid", "speedy"], "slow": ["sluggish"]}
    assert lexicon.duplicate_heads == 1 and lexicon.self_links == 1
    assert lexicon.n_edges == 4 and len(lexicon) == 2
    assert lexicon.vocabulary() == {"fast", "quick", "rapid", "speedy", "slow", "sluggish"}


def test_wordnet_data_lines_are_parsed_with_pointers_and_markers():
    entity = data.parse_wordnet_data_line(ENTITY)
    assert entity.key == ("n", 1740) and entity.lemmas == ("entity",)
    assert entity.pointers == (("~", "n", 1930), ("~", "n", 2137), ("~", "n", 4424418))
    galore = data.parse_wordnet_data_line(GALORE)
    assert galore.pos == "a" and galore.lemmas == ("abounding", "galore")  # satellite, marker dropped
    assert galore.pointers == (("&", "a", 13887),)
    assert data.parse_wordnet_data_line("  1 This software and database is being provided") is None


def test_ppdb_and_framenet_lexicons_load_from_the_mirror():
    ppdb = data.load_retrofit_lexicon("ppdb-xl")
    assert len(ppdb) == 102_899  # 102,902 lines, 3 heads repeat once lower-cased
    assert ppdb.neighbours["clotted"] == ["coagulated"]
    framenet = data.load_retrofit_lexicon("framenet")
    assert "splatter" in framenet.neighbours["sprinkle"]
    assert framenet.duplicate_heads > 1000  # words that evoke several frames
    with pytest.raises(ValueError):
        data.load_retrofit_lexicon("wordnet-synonyms")


@pytest.mark.slow
def test_wordnet_lexicons_link_synonyms_and_optionally_hypernyms_and_hyponyms():
    synsets = data.load_wordnet_synsets()
    assert len(synsets) == 117_659  # WordNet 3.0: 82,115 noun, 13,767 verb, 18,156 adj, 3,621 adv
    synonyms = data.load_wordnet_lexicon("synonyms", synsets=synsets)
    assert set(synonyms.neighbours["happy"]) == {"felicitous", "glad", "well-chosen"}
    assert "canine" not in synonyms.neighbours["dog"] and "domestic_dog" in synonyms.neighbours["dog"]
    plus = data.load_wordnet_lexicon("synonyms+", synsets=synsets)
    assert {"canine", "puppy", "domestic_dog"} <= set(plus.neighbours["dog"])  # hypernym, hyponym, synonym
    assert plus.n_edges > 2 * synonyms.n_edges
    assert all(w not in ns for w, ns in plus.neighbours.items())


def test_wordnet_glosses_and_synsets_come_from_one_pass_over_the_data_files():
    from embrepro import defsent
    from embrepro.data.lexicons import WORDNET_DATA_FILES, iter_wordnet_data
    from embrepro.data.manifest import fetch

    # Adverbs (3,621 synsets): the glosses are the synsets, in file order, with their cleaned definitions.
    glosses = defsent.load_wordnet_glosses("r")
    synsets = data.load_wordnet_synsets("r")
    assert len(glosses) == len(synsets) == 3_621
    assert [(pos, lemmas) for pos, lemmas, _ in glosses] == [(s.pos, s.lemmas) for s in synsets.values()]
    # The same list as parsing every line of the file on its own (the loop this replaced).
    with open(fetch("wordnet", WORDNET_DATA_FILES["r"]), encoding="utf-8") as fh:
        by_line = [p for p in map(defsent.parse_gloss_line, fh) if p is not None]
    assert glosses == by_line
    first, line = next(iter_wordnet_data("r"))
    assert line.startswith(f"{first.offset:08d} ") and " | " in line
    with pytest.raises(ValueError, match="part of speech"):
        defsent.load_wordnet_glosses("x")
