"""The hand-derived delta recursion of examples/backprop_by_hand.py against the engine."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import glassgrad as gg

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "backprop_by_hand.py"


def _load_example():
    spec = importlib.util.spec_from_file_location("backprop_by_hand", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


bp = _load_example()


@pytest.fixture(scope="module")
def problem():
    params = bp.init_params(seed=3)
    x = np.random.default_rng(4).normal(size=10)
    return params, x, 0.7


@pytest.mark.parametrize("a", [0.5, 1.0, 2.0])
def test_hand_and_engine_gradients_agree(problem, a):
    params, x, y = problem
    hand, engine = bp.hand_gradients(params, x, y, a), bp.engine_gradients(params, x, y, a)
    assert list(engine) == bp.NAMES
    for name in bp.NAMES:
        assert hand[name].shape == params[name].shape == engine[name].shape
        np.testing.assert_allclose(hand[name], engine[name], rtol=0, atol=1e-10, err_msg=name)
    assert bp.max_difference(hand, engine) < 1e-10
    assert np.abs(hand["layers.0.weight"]).max() > 1e-4  # not trivially zero


@pytest.mark.parametrize("a", [0.5, 1.0, 2.0])
def test_both_agree_with_finite_differences(problem, a):
    params, x, y = problem
    numeric = gg.numerical_grad(lambda p: bp.error(p, x, y, a), params)
    hand = bp.hand_gradients(params, x, y, a)
    for name in bp.NAMES:
        np.testing.assert_allclose(hand[name], numeric[name], rtol=1e-6, atol=1e-9,
                                   err_msg=name)


def test_a_changes_the_gradients(problem):
    params, x, y = problem
    g1, g2 = bp.hand_gradients(params, x, y, 1.0), bp.hand_gradients(params, x, y, 2.0)
    assert bp.max_difference(g1, g2) > 1e-3


def test_script_runs_and_reports_tiny_differences():
    result = subprocess.run([sys.executable, str(EXAMPLE)], capture_output=True, text=True,
                            check=True, timeout=60)
    reported = [float(line.rsplit(" ", 1)[1]) for line in result.stdout.splitlines()
                if "max |hand - engine|" in line]
    assert len(reported) == 3 and max(reported) < 1e-10
