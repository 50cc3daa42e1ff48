"""Run the tutorials as doctests, so their code and printed numbers never rot."""

from __future__ import annotations

import doctest
from pathlib import Path

import pytest

import glassgrad

DOCS = Path(__file__).resolve().parent.parent / "docs"
TUTORIAL = DOCS / "tutorial-derivatives.md"


@pytest.mark.skipif(not hasattr(glassgrad, "partial"),
                    reason="glassgrad does not export the calculus functions (partial, total, "
                           "differential, explain) yet")
def test_tutorial_runs() -> None:
    result = doctest.testfile(str(TUTORIAL), module_relative=False,
                              optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0
    assert result.failed == 0, f"{result.failed} of {result.attempted} tutorial examples failed"


def test_how_glassgrad_works_runs() -> None:
    if "doc_softplus" in glassgrad.extend.primitives:  # the page registers it
        glassgrad.extend.primitives.pop("doc_softplus")
    result = doctest.testfile(str(DOCS / "how-glassgrad-works.md"), module_relative=False,
                              optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed"


def test_debugging_gradients_tutorial_runs() -> None:
    result = doctest.testfile(str(DOCS / "tutorial-debugging-gradients.md"),
                              module_relative=False,
                              optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 20
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed"
