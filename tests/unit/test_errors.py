"""Problem formatting, TunesmithError rendering and the Collector that reports all problems at once."""

from __future__ import annotations

import pytest

from tunesmith.errors import EXIT_USER_ERROR, Collector, Problem, TunesmithError, fail

# --------------------------------------------------------------------------- Problem.__str__


def test_problem_str_full_location_field_and_fix():
    p = Problem("5 is outside (0, 1)", "use 1e-4", file="run.yaml", line=7, field="train.learning_rate")
    assert str(p) == "run.yaml:7: train.learning_rate: 5 is outside (0, 1) (use 1e-4)"


def test_problem_str_file_without_line():
    assert str(Problem("config file not found", "check the path", file="a.yaml")) == \
        "a.yaml: config file not found (check the path)"


def test_problem_str_line_without_file():
    assert str(Problem("bad row", line=4)) == "line 4: bad row"


def test_problem_str_field_only():
    assert str(Problem("unknown key", field="train.x")) == "train.x: unknown key"


def test_problem_str_bare_problem_has_no_empty_parentheses():
    assert str(Problem("something is wrong")) == "something is wrong"


def test_problem_str_line_and_field_without_file():
    assert str(Problem("is empty", "fill it", line=3, field="output")) == "line 3: output: is empty (fill it)"


# --------------------------------------------------------------------------- TunesmithError


def test_error_wraps_a_single_problem_in_a_list():
    p = Problem("x", file="f.jsonl", line=2)
    err = TunesmithError(p)
    assert err.problems == [p]
    assert err.title == ""
    assert str(err) == "f.jsonl:2: x"


def test_error_with_title_indents_problems_under_it():
    err = TunesmithError([Problem("a", line=1), Problem("b", line=2)], title="2 problems:")
    assert str(err) == "2 problems:\n  line 1: a\n  line 2: b"
    assert err.render() == str(err)


def test_error_single_problem_with_title_keeps_title():
    err = TunesmithError([Problem("a", file="c.yaml", line=3)], title="c.yaml: invalid config")
    assert str(err) == "c.yaml: invalid config\n  c.yaml:3: a"


def test_error_is_an_exception():
    with pytest.raises(TunesmithError) as info:
        raise TunesmithError(Problem("boom"))
    assert str(info.value) == "boom"


def test_fail_builds_but_does_not_raise():
    err = fail("data file not found", "check the path", file="d.jsonl", line=None, field="data.train")
    assert isinstance(err, TunesmithError)
    assert len(err.problems) == 1
    p = err.problems[0]
    assert (p.problem, p.fix, p.file, p.line, p.field) == (
        "data file not found", "check the path", "d.jsonl", None, "data.train")
    assert str(err) == "d.jsonl: data.train: data file not found (check the path)"


def test_exit_code_for_user_errors_is_2():
    assert EXIT_USER_ERROR == 2


# --------------------------------------------------------------------------- Collector


def test_collector_without_problems_does_not_raise():
    c = Collector(title="anything")
    c.raise_if_any()  # must not raise
    assert c.problems == []


def test_collector_add_builds_located_problems():
    c = Collector()
    c.add("bad", "fix", file="f.yaml", line=3, field="k")
    assert c.problems == [Problem("bad", "fix", file="f.yaml", line=3, field="k")]


def test_collector_one_problem_no_title_renders_just_the_problem():
    c = Collector()
    c.add("bad value", "use 3", file="f.yaml", line=9, field="train.x")
    with pytest.raises(TunesmithError) as info:
        c.raise_if_any()
    assert info.value.title == ""
    assert len(info.value.problems) == 1
    assert str(info.value) == "f.yaml:9: train.x: bad value (use 3)"


def test_collector_carries_every_problem_with_a_default_title():
    c = Collector()
    c.add("first", line=1)
    c.add("second", line=2)
    c.add("third", line=3)
    with pytest.raises(TunesmithError) as info:
        c.raise_if_any()
    err = info.value
    assert [p.problem for p in err.problems] == ["first", "second", "third"]
    assert err.title == "3 problems found:"
    assert str(err) == "3 problems found:\n  line 1: first\n  line 2: second\n  line 3: third"


def test_collector_keeps_its_own_title():
    c = Collector(title="cfg.yaml: invalid config")
    c.add("a")
    c.add("b")
    with pytest.raises(TunesmithError) as info:
        c.raise_if_any()
    assert info.value.title == "cfg.yaml: invalid config"
    assert str(info.value).splitlines() == ["cfg.yaml: invalid config", "  a", "  b"]


def test_collectors_do_not_share_problem_lists():
    a, b = Collector(), Collector()
    a.add("only in a")
    assert b.problems == []
    b.raise_if_any()
