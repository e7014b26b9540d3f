"""Tests of embrepro.defsent (hand-built cases; no data files)."""

import numpy as np
import pytest

from embrepro import defsent


def test_clean_gloss_drops_examples():
    assert defsent.clean_gloss('a domesticated animal; "the dog barked all night"') == "a domesticated animal"
    assert defsent.clean_gloss("plain definition  ") == "plain definition"


def test_parse_gloss_line():
    line = ("02084071 05 n 03 dog 0 domestic_dog 0 Canis_familiaris 0 000 | a member of the genus Canis; "
            '"the dog barked all night"  \n')
    pos, lemmas, definition = defsent.parse_gloss_line(line)
    assert pos == "n" and lemmas == ("dog", "domestic_dog", "Canis_familiaris")
    assert definition == "a member of the genus Canis"
    assert defsent.parse_gloss_line("  1 This software and database\n") is None


def test_definition_pairs_filters():
    glosses = [("n", ("Dog", "domestic_dog", "hound"), "a member of the genus canis"),
               ("n", ("cat",), "a cat that purrs"),          # contains its own word: dropped
               ("n", ("fox",), "vulpine"),                     # one-word definition: dropped
               ("n", ("dog",), "a member of the genus canis"),  # duplicate pair: dropped
               ("v", ("zzyzx",), "not in the vocabulary at all")]
    p = defsent.definition_pairs(glosses, {"dog", "hound", "cat", "fox"})
    assert p.words == ["dog", "hound"]
    assert p.definitions == ["a member of the genus canis"] * 2


def test_split_by_word_keeps_words_apart():
    p = defsent.DefinitionPairs([f"def {i}" for i in range(40)], [f"w{i % 10}" for i in range(40)])
    tr, dv = defsent.split_by_word(p, 0.2, seed=3)
    assert len(set(dv.words)) == 2 and len(dv) == 8 and len(tr) == 32
    assert not set(tr.words) & set(dv.words)
    assert defsent.split_by_word(p, 0.2, seed=3)[1].words == dv.words
    with pytest.raises(ValueError):
        defsent.split_by_word(p, 1.0)




def test_loss_is_cross_entropy_over_frozen_targets():
    torch = pytest.importorskip("torch")

    class Enc(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.eye(2))

        def get_sentence_embedding_dimension(self):
            return 2

        def forward(self, features):
            return {"sentence_embedding": features["x"] @ self.w}

    targets = np.array([[1.0, 0.0], [0.0, 2.0], [-1.0, 0.0]], dtype=np.float32)
    loss = defsent.DefSentLoss(Enc(), targets, temperature=0.5)
    with torch.no_grad():
        loss.projection.weight.copy_(torch.eye(2))
        loss.projection.bias.zero_()
    x = torch.tensor([[3.0, 0.0]])
    value = loss([{"x": x}], torch.tensor([0])).item()
    # normalised: z = (1, 0); targets normalised: (1,0), (0,1), (-1,0); logits = (2, 0, -2)
    expected = -np.log(np.exp(2) / (np.exp(2) + 1 + np.exp(-2)))
    assert value == pytest.approx(expected, rel=1e-5)
    # the output layer is frozen: a buffer, not a parameter
    names = {n for n, _ in loss.named_parameters()}
    assert "targets" not in names and "projection.weight" in names and "model.w" in names
    with pytest.raises(ValueError):
        defsent.DefSentLoss(Enc(), targets, temperature=0)
