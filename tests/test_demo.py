"""Tests for ``glassgrad demo``."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from glassgrad.cli import main

SRC = str(Path(__file__).resolve().parent.parent / "src")


def _run_json(capsys, *extra):
    assert main(["demo", "--json", *extra]) == 0
    out, err = capsys.readouterr()
    return json.loads(out), err  # stdout holds the JSON and nothing else


def test_demo_json_and_plot(capsys, tmp_path):
    plot = tmp_path / "l.png"
    results, err = _run_json(capsys, "--epochs", "2", "--plot", str(plot))
    assert results["model"] == "MLP([10, 16, 16, 1])"
    assert results["epochs"] == 2 and results["n_train"] + results["n_test"] == 442
    assert results["steps"] == 2 * results["n_train"]
    check = results["gradient_check"]
    assert check["passed"] and check["max_rel_error"] < 1e-4 and check["parameters"] == 465
    assert len(results["history"]["loss"]) == len(results["history"]["val_loss"]) == 2
    mse, raw = results["mse"], results["mse_original_units"]
    assert set(mse) == set(raw) == {"train", "test", "baseline_train", "baseline_test"}
    assert abs(mse["baseline_train"] - 1.0) < 1e-9  # standardised with training statistics
    assert 3000 < raw["baseline_train"] < 9000  # the raw target's variance is about 5900
    assert "epoch 2/2" in err and "gradient check" in err
    if importlib.util.find_spec("matplotlib") is not None:
        assert results["plot"] == str(plot)
        assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    else:
        assert results["plot"] is None and "matplotlib is not installed" in err


def test_demo_without_matplotlib_skips_the_plot(capsys, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes the import fail
    plot = tmp_path / "l.png"
    results, err = _run_json(capsys, "--epochs", "1", "--quiet", "--plot", str(plot))
    assert results["plot"] is None and not plot.exists()
    assert "matplotlib is not installed" in err


def test_demo_beats_the_baseline_on_held_out_data(capsys):
    results, err = _run_json(capsys, "--no-plot", "--quiet")
    assert err == "" and results["plot"] is None
    mse = results["mse"]
    assert mse["test"] < 0.8 * mse["baseline_test"]
    assert mse["train"] < 0.6 * mse["baseline_train"]


def test_demo_text_output(capsys):
    assert main(["demo", "--epochs", "1", "--no-plot"]) == 0
    out, err = capsys.readouterr()
    assert "max rel error" in out and "... OK" in out
    assert "held-out set" in out and "baseline" in out and "original units" in out
    assert "epoch 1/1" in err and "\r" not in err


def test_python_m_glassgrad_demo_help():
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    result = subprocess.run([sys.executable, "-m", "glassgrad", "demo", "--help"], env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    for option in ("--task", "--epochs", "--lr", "--a", "--seed", "--plot", "--no-plot",
                   "--json", "--quiet"):
        assert option in result.stdout


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning")
def test_diverging_training_exits_with_a_message(capsys):
    assert main(["demo", "--epochs", "3", "--lr", "1e6", "--no-plot", "--quiet"]) == 1
    out, err = capsys.readouterr()
    assert out == "" and "training diverged" in err and "epoch 1, step" in err


def test_demo_digits_trains_a_cnn_and_plots_gradient_norms(capsys, tmp_path):
    plot = tmp_path / "g.png"
    results, err = _run_json(capsys, "--task", "digits", "--epochs", "3", "--plot", str(plot))
    assert results["task"] == "digits" and results["epochs"] == 3
    assert results["test_accuracy"] >= 0.9 and results["train_accuracy"] >= 0.9
    assert list(results["grad_norms"]) == ["conv1.weight", "conv1.bias", "conv2.weight",
                                           "conv2.bias", "fc.weight", "fc.bias"]
    assert all(len(v) == 3 for v in results["grad_norms"].values())
    assert "epoch 3/3" in err
    if importlib.util.find_spec("matplotlib") is not None:
        assert results["plot"] == str(plot) and plot.read_bytes()[:4] == b"\x89PNG"


def test_demo_digits_text_output(capsys):
    assert main(["demo", "--task", "digits", "--epochs", "1", "--no-plot", "--quiet"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("trained in") and "held-out" in out and err == ""


def test_version_and_help():
    import glassgrad

    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    for args, expected in [(["--version"], f"glassgrad {glassgrad.__version__}"),
                           (["--help"], "--version")]:
        result = subprocess.run([sys.executable, "-m", "glassgrad", *args], env=env,
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 0 and expected in result.stdout, (args, result.stderr)
