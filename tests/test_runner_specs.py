"""Probe defects 5 and 6: a broken chapter is named and isolated; parameters are checked
against declared types and ranges before any kernel starts."""

import json

import pytest

from conftest import write_chapter
from embrepro.book import cli
from embrepro.book.runner import ChapterError, ParameterError, Runner, discover


def no_kernel(*args, **kwargs):
    raise AssertionError("no kernel may start here")


BROKEN = {
    "yaml error": ("title: [unclosed\n", None, "not valid YAML at line"),
    "profiles as a list": ("title: T\nprofiles:\n  - smoke\n  - book\n", None, "profiles must be a mapping"),
    "truncated notebook": ("title: T\n", lambda text: text[: len(text) // 2], "not a readable notebook"),
    "negative timeout": ("title: T\ntimeout_s: {smoke: -1}\n", None, "timeout_s.smoke must be a positive"),
    "untyped None default": ("title: T\n", lambda text: text.replace("y = 1", "y = None"), "need a declared type"),
}


@pytest.mark.parametrize("problem", sorted(BROKEN))
def test_a_broken_chapter_is_named_and_the_others_still_work(tiny_project, monkeypatch, capsys, problem):
    spec, edit, message = BROKEN[problem]
    nb = write_chapter(tiny_project / "notebooks" / "part", "broken", 'profile = "book"\ny = 1', "pass", spec)
    if edit:
        nb.write_text(edit(nb.read_text()))
    chapters = discover(tiny_project)
    assert "broken" not in chapters and set(chapters) == {"producer", "consumer"}
    assert message in chapters.broken["broken"] and "broken." in chapters.broken["broken"]

    monkeypatch.setenv("EMBREPRO_ROOT", str(tiny_project))
    assert cli.main(["list"]) == 0
    listing = capsys.readouterr().out
    assert "BROKEN" in listing and "producer" in listing
    for argv in (["run", "broken"], ["run"], ["run", "--dry-run", "broken"], ["determinism", "broken"]):
        with monkeypatch.context() as patch:
            patch.setattr("papermill.execute_notebook", no_kernel)
            assert cli.main(argv) == 2, argv
        err = capsys.readouterr().err
        assert "broken" in err and message in err and "Traceback" not in err
    if problem == "yaml error":  # one kernel run is enough to show that the others still run
        assert cli.main(["run", "producer"]) == 0


def test_a_chapter_needing_a_broken_one_is_refused(tiny_project):
    (tiny_project / "notebooks" / "part" / "producer.yml").write_text("title: [oops\n")
    with pytest.raises(ChapterError, match="needs chapter producer, which is broken"):
        Runner(discover(tiny_project), log=lambda line: None).plan(["consumer"], "book", {})


def _chapter(root, parameters_cell, spec):
    write_chapter(root / "notebooks" / "part", "knobs", parameters_cell, "pass", "title: Knobs\n" + spec)
    chapters = discover(root)
    assert "knobs" in chapters, chapters.broken
    return chapters["knobs"]


KNOBS = 'profile = "book"\nepochs = 3\nsubsample = 0.001\nrate = 0.5\nlimit = None\nsize = 10\nlexicons = ["a", "b"]\nname = "x"'
RULES = """parameters:
  epochs: {min: 1}
  subsample: {gt: 0, lt: 1}
  limit: {type: int, min: 1000}
  size: {type: int, min: 1, nullable: true}
  lexicons: {choices: [a, b, c]}
"""


def test_declared_types_and_ranges_are_checked(tiny_project):
    spec = _chapter(tiny_project, KNOBS, RULES)
    bad = {
        "epochs": ("0", "at least 1"),
        "subsample": ("1.0", "less than 1"),
        "limit": ("abc", "expects int"),
        "lexicons": ("[a, z]", r"lexicons\[1\]' must be one of"),
        "rate": ("nan", "finite"),
        "name": ("null", None),  # a string parameter takes the text "null"
    }
    for name, (value, message) in bad.items():
        if message is None:
            assert spec.resolve("book", {name: value})[name] == "null"
            continue
        with pytest.raises(ParameterError, match=message):
            spec.resolve("book", {name: value})
    with pytest.raises(ParameterError, match="'rate' must be a finite number"):
        spec.resolve("book", {"rate": "inf"})
    with pytest.raises(ParameterError, match="limit' must be at least 1000"):
        spec.resolve("book", {"limit": "5"})
    with pytest.raises(ParameterError, match="'epochs' may not be null"):
        spec.resolve("book", {"epochs": "null"})
    ok = spec.resolve("book", {"limit": "5000", "size": "null", "subsample": "1e-5", "lexicons": "[c]"})
    assert ok["limit"] == 5000 and ok["size"] is None and ok["subsample"] == 1e-5 and ok["lexicons"] == ["c"]
    assert spec.resolve("book", {"limit": "null"})["limit"] is None  # the default is None


@pytest.mark.parametrize("profile_value, message", [
    ("epochs: null", "'epochs' may not be null"),
    ("subsample: .nan", "finite"),
    ("epochs: 0", "at least 1"),
    ("limit: 12.5", "expects int"),
])
def test_profile_values_are_checked_when_the_chapter_is_read(tiny_project, profile_value, message):
    write_chapter(tiny_project / "notebooks" / "part", "knobs", KNOBS, "pass",
                  "title: Knobs\n" + RULES + f"profiles:\n  paper: {{{profile_value}}}\n")
    broken = discover(tiny_project).broken
    assert message in broken["knobs"] and "knobs.yml profile 'paper'" in broken["knobs"]


def test_bad_declarations_are_refused(tiny_project):
    for rules, message in (("parameters:\n  epochs: {minimum: 1}\n", "unknown keys"),
                           ("parameters:\n  nope: {min: 1}\n", "not a parameter"),
                           ("parameters:\n  epochs: {type: integer}\n", "type must be one of"),
                           ("parameters:\n  epochs: {min: 5}\n", "at least 5")):  # the default breaks it
        write_chapter(tiny_project / "notebooks" / "part", "knobs", KNOBS, "pass",
                      "title: Knobs\n" + rules.replace("parameters:\n", "parameters:\n  limit: {type: int}\n"))
        assert message in discover(tiny_project).broken["knobs"], rules


def test_real_chapters_declare_every_none_default_and_refuse_nonsense():
    chapters = discover()
    assert not chapters.broken, chapters.broken
    with pytest.raises(ParameterError, match="at least 1"):
        chapters["word2vec"].resolve("book", {"epochs": "0"})
    with pytest.raises(ParameterError, match="less than 1"):
        chapters["word2vec"].resolve("book", {"subsample": "2"})
    with pytest.raises(ParameterError, match="may not be null"):
        chapters["word2vec"].resolve("book", {"n_seeds": "null"})
    with pytest.raises(ParameterError, match="must be one of"):
        chapters["retrofitting"].resolve("book", {"lexicons": "[ppdb-xl, thesaurus]"})
    assert chapters["muvera"].resolve("book", {"n_queries": "20"})["n_queries"] == 20
    assert chapters["word2vec"].resolve("paper")["corpus_tokens"] is None
    for spec in chapters.values():
        assert all(seconds > 0 for seconds in spec.timeout_s.values())
        nb = json.loads(spec.notebook.read_text())
        assert nb["cells"]
