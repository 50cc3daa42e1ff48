"""Tests for ``glassgrad explain`` (glassgrad._explain_cli)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from glassgrad.cli import main

SEED = ["explain", "4*pi/3*t*x*y", "--wrt", "x", "--given", "t=x", "--at", "x=2,y=3"]
PARTIAL = 4 * math.pi / 3 * 2 * 3  # 4π/3 · t · y at t = x = 2, y = 3
TOTAL = 8 * math.pi / 3 * 2 * 3


def run(argv, capsys):
    """(exit status, stdout, stderr) of ``glassgrad *argv``."""
    try:
        code = main(argv)
    except SystemExit as exit_:
        code = exit_.code
    out, err = capsys.readouterr()
    return code, out, err


def test_seed_prints_partial_total_and_naive(capsys):
    pytest.importorskip("sympy")
    code, out, err = run(SEED, capsys)
    assert code == 0 and err == ""
    lines = {line.split()[0]: line for line in out.splitlines() if line.strip()}
    assert "4*pi*t*y/3" in lines["partial"] and "= 25.13" in lines["partial"]
    assert "8*pi*x*y/3" in lines["total"] and "= 50.27" in lines["total"]
    assert "4*pi*x*y/3" in lines["naive"] and "= 25.13" in lines["naive"]
    assert "t = 2" in lines["at:"]
    assert "∂f/∂t · dt/dx = (4*pi*x*y/3) · (1) = 25.13 · 1 = 25.13" in out
    assert "warning" not in out


def test_json_has_numbers_formulas_and_terms(capsys):
    pytest.importorskip("sympy")
    code, out, _ = run(SEED + ["--json"], capsys)
    data = json.loads(out)
    assert code == 0
    assert data["partial"] == pytest.approx(PARTIAL) and data["naive"] == pytest.approx(PARTIAL)
    assert data["total"] == pytest.approx(TOTAL)
    assert data["formulas"]["total"] == "8*pi*x*y/3" and data["formulas_match"] is True
    assert [t["name"] for t in data["terms"]] == ["t", "x", "y"]
    assert data["terms"][0]["derivative"] == 1.0 and data["terms"][2]["product"] == 0.0
    assert data["given"] == {"t": "x"} and data["at"] == {"x": 2.0, "y": 3.0}
    assert data["values"]["t"] == 2.0


def test_latex_formulas(capsys):
    pytest.importorskip("sympy")
    code, out, _ = run(SEED + ["--latex"], capsys)
    assert code == 0 and r"\frac{8 \pi x y}{3}" in out


def test_without_given_total_equals_partial(capsys):
    code, out, _ = run(["explain", "sin(x)*y", "--wrt", "x", "--at", "x=0,y=2", "--json"],
                       capsys)
    data = json.loads(out)
    assert code == 0 and data["partial"] == data["total"] == data["naive"] == 2.0


def test_formulas_only_without_a_point(capsys):
    pytest.importorskip("sympy")
    code, out, _ = run(["explain", "x*u", "--wrt", "x", "--given", "u=v**2; v=sin(x)"], capsys)
    assert code == 0
    assert "x*sin(2*x) + sin(x)**2" in out and "at:" not in out


def test_numbers_only_without_sympy(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "sympy", None)
    code, out, _ = run(SEED, capsys)
    assert code == 0 and "25.13" in out and "50.27" in out
    assert 'pip install "glassgrad[symbolic]"' in out
    code, _, err = run(SEED[:6], capsys)  # no --at and no formulas: nothing to show
    assert code == 2 and "give --at" in err


def test_poles_show_inf_and_json_null(capsys):
    code, out, _ = run(["explain", "log(x)", "--wrt", "x", "--at", "x=0", "--json"], capsys)
    assert code == 0 and json.loads(out)["partial"] is None
    code, out, _ = run(["explain", "log(x)", "--wrt", "x", "--at", "x=0"], capsys)
    assert code == 0 and "= inf" in out and "warning" not in out


@pytest.mark.parametrize("argv, message", [
    (["explain", "__import__('os')", "--wrt", "x"], "names beginning with '_'"),
    (["explain", "x.y", "--wrt", "x"], "attribute access"),
    (["explain", "x[0]", "--wrt", "x"], "subscripts"),
    (["explain", "lambda: 1", "--wrt", "x"], "lambda"),
    (["explain", "x*y", "--wrt", "z", "--at", "x=1,y=2"], "unknown variable 'z'"),
    (["explain", "x*y", "--wrt", "x", "--at", "x=a"], "not a number"),
    (["explain", "x*y", "--wrt", "x", "--at", "x=1"], "--at: missing value"),
    (["explain", "x*t", "--wrt", "x", "--given", "t=x", "--at", "x=1,t=2"], "dependent"),
    (["explain", "x*t", "--wrt", "x", "--given", "t=u;u=t", "--at", "x=1"], "cycle"),
    (["explain", "x*t", "--wrt", "x", "--given", "t=x;w=x", "--at", "x=1"], "'w'"),
])
def test_bad_input_exits_2_with_a_message(argv, message, capsys):
    code, out, err = run(argv, capsys)
    assert code == 2 and out == ""
    assert err.startswith("glassgrad explain: error:") and message in err
    assert "Traceback" not in err


def test_help(capsys):
    code, out, _ = run(["explain", "--help"], capsys)
    assert code == 0 and "--wrt" in out and "--given" in out and "glassgrad explain" in out


def test_module_entry_point_end_to_end():
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).parents[1] / "src"))
    ok = subprocess.run([sys.executable, "-m", "glassgrad"] + SEED, capture_output=True,
                        text=True, env=env, timeout=120)
    assert ok.returncode == 0 and "50.27" in ok.stdout
    bad = subprocess.run([sys.executable, "-m", "glassgrad", "explain", "__import__('os')",
                          "--wrt", "x"], capture_output=True, text=True, env=env, timeout=120)
    assert bad.returncode == 2 and "not allowed" in bad.stderr
    assert "Traceback" not in bad.stderr


# --- bounded: inputs that once took minutes or gigabytes -------------------------------------

_NESTED_SIN = "sin(" * 30 + "x" + ")" * 30
_DIAMONDS = "; ".join([f"a{i}=b{i}+c{i}; b{i}=a{i + 1}; c{i}=a{i + 1}" for i in range(25)]
                      + ["a25=x"])  # 2**25 paths from x to a0
_FIBONACCI = "; ".join([f"a{i}=sin(a{i + 1})+cos(a{i + 2})" for i in range(24)]
                       + ["a24=x", "a25=x"])  # its formula doubles at every level
# The peak resident memory of this process alone: /proc's VmHWM starts afresh at exec, while
# ru_maxrss keeps the parent's peak from before the fork (the whole test session's).
_MEASURED = """
import re, resource, sys
from glassgrad.cli import main
code = main(sys.argv[1:])
try:
    with open("/proc/self/status") as status:
        peak = int(re.search(r"VmHWM:\\s+(\\d+) kB", status.read()).group(1))
except OSError:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print("maxrss", peak, file=sys.stderr)
sys.exit(code)
"""


@pytest.mark.parametrize("argv, note", [
    # was 25 s: simplify expanded (x+1)**999
    (["(x+1)**1000", "--wrt", "x", "--at", "x=2"],
     "formulas shown as built, not simplified: a power of degree 999 of a sum"),
    # never ended: simplify on 30 nested cosines
    ([_NESTED_SIN, "--wrt", "x", "--at", "x=0.5"],
     "formulas shown as built, not simplified: they are too large"),
    (["(x+1)**123456", "--wrt", "x", "--at", "x=2"],  # was over 900 MB
     "numbers only; no formulas: the formula is too large to write out: it has a power "
     "of degree 123456"),
    (["a0", "--wrt", "x", "--given", _DIAMONDS, "--at", "x=2"], None),  # was over 2 GB
    (["a0", "--wrt", "x", "--given", _FIBONACCI, "--at", "x=2"],  # never ended
     "numbers only; no formulas: the formula is too large to write out"),
])
def test_slow_inputs_finish_quickly_in_little_memory(argv, note):
    pytest.importorskip("sympy")
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).parents[1] / "src"))
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", _MEASURED, "explain", *argv],
                          capture_output=True, text=True, env=env, timeout=60)
    seconds = time.perf_counter() - start
    assert done.returncode == 0, done.stderr
    maxrss_kb = int(done.stderr.split("maxrss")[1])  # kilobytes on Linux
    assert seconds < 15 and maxrss_kb < 300_000  # measured: under 3 s and 80 MB
    assert "\ntotal    df/dx = " in done.stdout  # the engine's number is always there
    if note:
        assert f"note: {note}" in done.stdout


def test_the_limits_are_in_the_help(capsys):
    code, out, _ = run(["explain", "--help"], capsys)
    assert code == 0 and "limits (so that every accepted input finishes" in out
    assert "shown alone, with a" in out and "never path by path" in out


def test_json_carries_the_notes(capsys):
    pytest.importorskip("sympy")
    code, out, _ = run(["explain", "(x+1)**100", "--wrt", "x", "--at", "x=0.5", "--json"],
                       capsys)
    data = json.loads(out)
    assert code == 0 and data["formulas"]["total"] == "100*(x + 1)**99"
    assert "power of degree 99 of a sum" in data["notes"][0] and data["formulas_match"]
