"""The template sandbox: what a hostile template meets (pure; every case bounded)."""

from __future__ import annotations

import sys
import time

import pytest

from notify.templating import MAX_OUTPUT, TemplateError, check, render

EVENT = {"event": {"id": "1-0", "type": "a.b", "channel": "x", "data": {"n": 1, "s": "<b>"}}}


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("{{ event.type }} {{ event.data.n }}", "a.b 1"),
        ("{{ event.data | tojson }}", '{"n":1,"s":"\\u003cb\\u003e"}'),
        ("{{ event.data.s }}", "<b>"),
        ("{% for k in event.data|sort %}{{ k }};{% endfor %}", "n;s;"),
        ("{{ '%05d' % event.data.n }} {{ '{:>4}'.format('x') }}", "00001    x"),
        ("{{ event.data.missing }}", ""),
        (
            "{% set ns = namespace(n=0) %}{% for i in range(5) %}{% set ns.n = ns.n + i %}"
            "{% endfor %}{{ ns.n }}",
            "10",
        ),
    ],
)
def test_renders(source: str, expected: str) -> None:
    check(source)
    assert render(source, EVENT) == expected


def test_html_escapes() -> None:
    assert render("<p>{{ event.data.s }}</p>", EVENT, html=True) == "<p>&lt;b&gt;</p>"
    assert render("{{ event.data.s }}", EVENT, html=False) == "<b>"


@pytest.mark.parametrize(
    ("source", "reason", "line"),
    [
        ("a\n{{ foo( }}", "unexpected '}'", 2),
        ("{% for %}", "Expected an expression", 1),
        ("{{ ''.__class__ }}", "'__class__' is not available", 1),
        ("x\n\n{{ ''.__class__.__mro__[1].__subclasses__() }}", "is not available", 3),
        ("{{ event['__class__'] }}", "'__class__' is not available", 1),
        ("{{ x.mro() }}", "'mro' is not available", 1),
        ("{% include '/etc/passwd' %}", "include, import and extends", 1),
        ("{% import 'x' as y %}", "include, import and extends", 1),
        ("{% extends '/etc/passwd' %}", "include, import and extends", 1),
        ("{% from 'x' import y %}", "include, import and extends", 1),
        ("x" * 20_000, "at most 16,384 characters", None),
    ],
)
def test_refused_when_saved(source: str, reason: str, line: int | None) -> None:
    with pytest.raises(TemplateError) as caught:
        check(source)
    assert reason in caught.value.reason
    assert caught.value.line == line


HOSTILE = [
    # reaching outside the sandbox, dynamically
    ("{{ ''|attr('__class__') }}", "'__class__' is not available"),
    ("{{ cycler()|attr('__init__') }}", "is undefined"),
    ("{{ self.__init__ }}", "not available"),
    ("{{ lipsum(100000000) }}", "'lipsum' is undefined"),
    ("{{ joiner() }}", "'joiner' is undefined"),
    ("{% set d = {} %}{{ d.update({'a': 1}) }}", "not allowed"),
    ("{% set l = [] %}{{ l.append(1) }}", "not allowed"),
    # looping forever
    (
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
        "ran longer than 100 ms",
    ),
    # exponential: cut by the recursion limit or the time limit, whichever comes first
    # (which one depends on the process's stack and load)
    (
        "{% macro f() %}{{ f() }}{{ f() }}{% endmacro %}{{ f() }}",
        "recursed too deeply | ran longer than",
    ),
    ("{% for x in [1] recursive %}{{ loop([1, 1]) }}{{ loop([1, 1]) }}{% endfor %}", "deeply"),
    # building huge values
    ("{{ 'x' * 1000000000 }}", "repetition over the size limit"),
    ("{{ [1] * 1000000000 }}", "repetition over the size limit"),
    ("{{ 10 ** 100000 }}", "a number over 4096 bits"),
    ("{{ 2 ** 1000000000000 }}", "a number over 4096 bits"),
    (
        "{% set ns = namespace(n=2) %}{% for i in range(40) %}{% set ns.n = ns.n * ns.n %}"
        "{% endfor %}{{ ns.n }}",
        "a number over 4096 bits",
    ),
    (
        "{% set ns = namespace(s='x') %}{% for i in range(60) %}{% set ns.s = ns.s ~ ns.s %}"
        "{% endfor %}{{ ns.s }}",
        "longer than 262,144",
    ),
    (
        "{% set ns = namespace(s='x') %}{% for i in range(60) %}{% set ns.s = ns.s + ns.s %}"
        "{% endfor %}{{ ns.s }}",
        "longer than 262,144",
    ),
    ("{{ 'x'|center(1000000000) }}", "width is over"),
    ("{{ 'x'|indent(1000000000) }}", "width is over"),
    ("{{ 'x'.ljust(1000000000) }}", "width is over"),
    ("{{ 'x'.zfill(1000000000) }}", "width is over"),
    ("{{ ('\t' * 1000).expandtabs(1000000) }}", "expandtabs"),
    ("{{ '{:>999999999}'.format(1) }}", "widths are over the limit"),
    ("{{ '%999999999d' % 1 }}", "widths are over the limit"),
    ("{{ '%999999999d'|format(1) }}", "widths are over the limit"),
    ("{{ ('x' * 200000)|replace('x', 'y' * 1000) }}", "replace"),
    ("{{ ('x' * 200000).replace('x', 'y' * 1000) }}", "replace"),
    ("{% set a = ['x' * 200000] * 5000 %}{{ a|join }}", "longer than 262,144"),
    ("{% set a = ['x' * 200000] * 5000 %}{{ ''.join(a) }}", "longer than 262,144"),
    ("{% set a = ['x' * 200000] * 5000 %}{{ a }}", "longer than 262,144"),
    ("{% set a = ['x' * 200000] * 5000 %}{{ a|tojson }}", "longer than 262,144"),
    ("{% set a = ['x' * 200000] * 5000 %}{{ a|string|length }}", "longer than 262,144"),
    ("{% for i in range(100000) %}{{ 'x' * 10000 }}{% endfor %}", "output is longer"),
    # failing on the event's content
    ("{{ event.data.x.y }}", "'dict object' has no attribute 'x'"),
    ("{{ 1 / 0 }}", "ZeroDivisionError"),
]


@pytest.mark.parametrize(("source", "reason"), HOSTILE)
def test_hostile_templates_are_cut_off(source: str, reason: str) -> None:
    started = time.monotonic()
    with pytest.raises(TemplateError) as caught:
        render(source, EVENT)
    reasons = reason.split(" | ")
    if reason == "deeply" and sys.gettrace() is not None:
        # under a tracer (`make coverage`) every frame is slower: the 100 ms cap can
        # stop the deep recursion before Python's recursion limit does
        reasons.append("longer than 100 ms")
    assert any(r in str(caught.value) for r in reasons), caught.value
    assert time.monotonic() - started < 2  # generous for a loaded machine; 0.1 s is the cap


def test_output_just_under_the_limit_renders() -> None:
    out = render("{{ 'x' * n }}", {"n": MAX_OUTPUT - 10})
    assert len(out) == MAX_OUTPUT - 10


def test_render_error_names_the_line() -> None:
    with pytest.raises(TemplateError) as caught:
        render("one\ntwo\n{{ event.data.x.y }}", EVENT)
    assert caught.value.line == 3
    assert str(caught.value).startswith("line 3: ")
