"""The docs keep up with the code: every script and `capret` command is named in README.md or
docs/, and every count of tests, test files or scripts they state is the true one.
"""

from __future__ import annotations

import argparse
import ast
import re
from collections.abc import Callable

import pytest

from bot.cli.main import build_parser
from tests.paths import PROJECT

DOCS = [PROJECT / "README.md", *sorted((PROJECT / "docs").glob("*.md"))]


def _text() -> str:
    return "\n".join(p.read_text() for p in DOCS)


def _test_files() -> int:
    return len([p for p in (PROJECT / "tests").rglob("test_*.py")])


def _test_functions(folder: str) -> int:
    """``def test_...`` in the folder's test modules (a parametrised one counts once)."""
    count = 0
    for path in (PROJECT / "tests" / folder).glob("test_*.py"):
        count += sum(isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
                     and node.name.startswith("test_") for node in ast.walk(ast.parse(
                         path.read_text())))
    return count


# What the docs state (the sentence's pattern) and how to count it.
CLAIMS: dict[str, Callable[[], int]] = {
    r"`scripts/` holds (\d+) scripts": lambda: len(list((PROJECT / "scripts").glob("*.py"))),
    r"`tests/` holds (\d+) test files": _test_files,
    r"`tests/vllm/` holds (\d+) test functions": lambda: _test_functions("vllm"),
}
# Any stated number of these things, so that none escapes the claims above.
ANY_COUNT = re.compile(r"\b(\d+) (?:tests|test files|test functions|scripts)\b")


def _commands() -> list[str]:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sorted(sub.choices)


def test_the_docs_exist_and_the_readme_is_short() -> None:
    assert {p.name for p in DOCS} >= {"README.md", "ARCHITECTURE.md", "EXPERIMENTS.md",
                                      "BENCHMARKS.md"}
    assert len((PROJECT / "README.md").read_text().splitlines()) <= 250


@pytest.mark.parametrize("script", sorted(p.name for p in (PROJECT / "scripts").glob("*.py")))
def test_every_script_is_named(script: str) -> None:
    assert f"scripts/{script}" in _text(), f"scripts/{script} is named nowhere in the docs"


@pytest.mark.parametrize("command", _commands())
def test_every_capret_command_is_named(command: str) -> None:
    named = re.compile(rf"capret (?:--config \S+ )?{re.escape(command)}(?![\w-])")
    assert named.search(_text()), f"`capret {command}` is named nowhere in the docs"


@pytest.mark.parametrize("pattern", sorted(CLAIMS))
def test_stated_counts_are_true(pattern: str) -> None:
    stated = [int(m.group(1)) for m in re.finditer(pattern, _text())]
    assert stated, f"the docs no longer state /{pattern}/"
    assert set(stated) == {CLAIMS[pattern]()}, (pattern, stated, CLAIMS[pattern]())


def test_no_other_count_is_stated() -> None:
    text = _text()
    checked = {m.start(1) for pattern in CLAIMS for m in re.finditer(pattern, text)}
    loose = [m.group(0) for m in ANY_COUNT.finditer(text) if m.start(1) not in checked]
    assert not loose, f"counts the docs state that no test checks: {loose}"
