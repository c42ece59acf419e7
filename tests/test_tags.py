"""The tag grammar (GTO's): names made and parsed back, as GTO parses them; names git would
reject or misread refused; semantic-version order; the message payload."""
from __future__ import annotations

import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mlproject.runner.gitops import tags
from mlproject.runner.gitops.tags import Action, Parsed, TagError, Version

names = st.from_regex(r"\A[a-zA-Z0-9][a-zA-Z0-9_/-]{0,20}[a-zA-Z0-9]\Z|\A[a-zA-Z0-9]\Z")


def test_tags_are_made_as_gto_makes_them() -> None:
    assert tags.version_tag("clf", Version(1, 2, 0)) == "clf@v1.2.0"
    assert tags.version_tag("clf", Version(1, 2, 0, "rc.1", "b7"), cancel=True) == "clf@v1.2.0-rc.1+b7!"
    assert tags.stage_tag("team/clf", "prod", 3) == "team/clf#prod#3"
    assert tags.stage_tag("clf", "prod", 4, cancel=True) == "clf#prod!#4"
    assert tags.deprecation_tag("clf", 5) == "clf@deprecated#5"


def test_tags_parse_back_as_gto_parses_them() -> None:
    parse_name = pytest.importorskip("gto.tag").parse_name  # gto: a test dependency

    cases = {
        "clf@v1.2.0": Parsed("clf", Action.REGISTER, version="v1.2.0"),
        "clf@v1.2.0!": Parsed("clf", Action.DEREGISTER, version="v1.2.0"),
        "clf@v1.0.0-rc.1+build.5": Parsed("clf", Action.REGISTER, version="v1.0.0-rc.1+build.5"),
        "clf#prod#3": Parsed("clf", Action.ASSIGN, stage="prod", counter=3),
        "clf#prod!#4": Parsed("clf", Action.UNASSIGN, stage="prod", counter=4),
        "clf#prod": Parsed("clf", Action.ASSIGN, stage="prod"),
        "clf@deprecated#2": Parsed("clf", Action.DEPRECATE, counter=2),
        "clf@deprecated": Parsed("clf", Action.DEPRECATE),
        "clf@created": Parsed("clf", Action.CREATE),
        "models/dir=clf@v0.1.0": Parsed("models/dir:clf", Action.REGISTER, version="v0.1.0"),
    }
    for name, parsed in cases.items():
        assert tags.parse(name) == parsed, name
        theirs = parse_name(name)
        # GTO parses `@created` but gives it no action (it writes no such tag, nor does mlproject)
        action = None if parsed.action is Action.CREATE else parsed.action.value
        assert theirs["name"] == parsed.model and getattr(theirs.get("action"), "value", None) == action
        assert (theirs.get("version"), theirs.get("stage"), theirs.get("counter")) == (
            parsed.version, parsed.stage, parsed.counter)
    for other in ("v1.2.0", "clf@1.2.0", "clf@v1.2", "clf@v01.2.0", "-clf@v1.0.0", "clf-@v1.0.0",
                  "clf#prod#x", "clf#-prod#1", "clf@deprecated!", "release-1", "clf@@v1.0.0", ""):
        assert tags.parse(other) is None, other
        assert parse_name(other, raise_on_fail=False) == {}, other


@settings(max_examples=60, deadline=None)
@given(names, names, st.integers(1, 10**6))
def test_every_name_accepted_is_a_tag_git_takes_and_parses_back(model: str, stage: str, n: int) -> None:
    try:
        made = [tags.version_tag(model, Version(1, n % 7, n)), tags.stage_tag(model, stage, n),
                tags.deprecation_tag(model, n)]
    except TagError:
        assert "//" in model + stage
        return
    for name in made:
        assert subprocess.run(["git", "check-ref-format", f"refs/tags/{name}"]).returncode == 0, name
        parsed = tags.parse(name)
        assert parsed is not None and parsed.model == model


@pytest.mark.parametrize("bad", ["-x", "--upload-pack=evil", "a b", "a..b", "a//b", "x@{1}", "a.lock",
                                 "é", "a\nb", "a:b", "a~1", "a^", "a*", "a?", "a[b", "a\\b", "", "a/",
                                 "/a", "_a", "a_"])
def test_names_git_would_reject_or_misread_are_refused(bad: str) -> None:
    with pytest.raises(TagError) as raised:
        tags.check_name(bad, "stage name")
    assert str(raised.value) == (
        f"stage name {bad!r} cannot be written in a registry tag: use letters, digits, '-', '_' "
        "and '/', starting and ending with a letter or a digit (no '//')")


def test_versions_order_as_semver_says_and_bump() -> None:
    semver = pytest.importorskip("semver")  # GTO's own dependency: the reference order

    texts = ["1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2",
             "1.0.0-beta.11", "1.0.0-rc.1", "1.0.0", "1.0.1", "1.2.0", "1.10.0", "2.0.0+build.1"]
    ours = sorted(texts[::-1], key=lambda t: tags.parse_version(t).key())
    assert ours == texts == sorted(texts[::-1], key=semver.Version.parse)
    assert str(tags.parse_version("v1.2.3")) == "v1.2.3"
    assert str(tags.parse_version("1.2.3").bumped("minor")) == "v1.3.0"
    assert str(tags.parse_version("1.2.3").bumped("major")) == "v2.0.0"
    assert str(tags.parse_version("1.2.3").bumped("patch")) == "v1.2.4"
    assert str(tags.parse_version("1.3.0-rc.1").bumped("patch")) == "v1.3.0"
    assert str(tags.ZERO.bumped("patch")) == "v0.0.1"
    for bad in ("1.2", "v1", "01.2.3", "1.2.3-", "1.2.3+", "x1.2.3", "1.2.3 "):
        with pytest.raises(TagError):
            tags.parse_version(bad)


def test_the_counter_follows_gtos_rule() -> None:
    existing = ["clf@v1.0.0", "clf#prod#1", "clf#staging#4", "clf@deprecated#2", "other#prod#9",
                "clf#dev", "unrelated"]
    assert tags.next_counter("clf", existing) == 5
    assert tags.next_counter("new", existing) == 1


def test_the_payload_reads_back_and_other_messages_have_none() -> None:
    text = tags.message("clf v1.0.0:\n registered", {"model": "clf", "metrics": {"acc": 0.9}})
    assert text == ('clf v1.0.0: registered\n\n{\n  "format": "mlproject.promotion/1",\n'
                    '  "metrics": {\n    "acc": 0.9\n  },\n  "model": "clf"\n}\n')
    assert tags.payload_of(text) == {"format": "mlproject.promotion/1", "model": "clf",
                                     "metrics": {"acc": 0.9}}
    for other in ("Registering artifact clf version v1.0.0", "a\n\nnot json", 'x\n\n{"format": "y"}',
                  "x\n\n[1]", "x\n\n" + "[" * 100_000):
        assert tags.payload_of(other) is None
