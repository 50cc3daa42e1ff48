"""gg.why: every kind of cause, found from the record, with its element, operation and line."""

from __future__ import annotations

import sys

import numpy as np
import pytest

import glassgrad as gg

why_module = sys.modules["glassgrad.why"]


def kinds(diagnosis) -> list[tuple]:
    return [(c.index, c.kind) for c in diagnosis.causes]


def test_relu_inactive_elements_are_named_with_their_inputs() -> None:
    d = gg.why(lambda x: np.sum(np.maximum(x, 0.0)))(np.array([1.0, -2.0, -3.0, 4.0, -0.5]))
    assert kinds(d) == [((slice(1, 3),), "relu"), ((4,), "relu")]
    assert "-2" in d.causes[0].detail and "-3" in d.causes[0].detail
    assert "np.maximum(x, 0.0)" in d.causes[0].op  # the user's source line
    assert "test_why.py" in d.causes[0].op


def test_relu_primitive_and_module() -> None:
    layer = gg.nn.ReLU()
    d = gg.why(lambda x: np.sum(layer(x)))(np.array([-1.0, 2.0]))
    assert kinds(d) == [((0,), "relu")]


def test_where_branch_not_taken() -> None:
    d = gg.why(lambda x: np.sum(np.where(x > 0, x, 2.0)))(np.array([1.0, -1.0]))
    assert kinds(d) == [((1,), "where")]
    assert "branch not taken" in d.causes[0].detail


def test_clip_bound_hit() -> None:
    d = gg.why(lambda x: np.sum(np.clip(x, -1.0, 1.0)))(np.array([0.5, 3.0, -7.0]))
    assert kinds(d) == [((slice(1, 3),), "clip")]
    assert "3" in d.causes[0].detail


def test_max_chosen_elsewhere() -> None:
    d = gg.why(np.max)(np.array([0.5, 2.0, 1.0]))
    assert kinds(d) == [((0,), "select"), ((2,), "select")]
    d = gg.why(lambda x, y: np.sum(np.maximum(x, y)), argnums=1)(np.array([3.0, 0.0]),
                                                                  np.array([1.0, 1.0]))
    assert kinds(d) == [((0,), "select")]


@pytest.mark.parametrize("cut", [
    lambda x: gg.stop_gradient(x),
    lambda x: x.detach(),
    lambda x: x.astype(np.int64) * 1.0,
])
def test_detached(cut) -> None:
    d = gg.why(lambda x: np.sum(cut(x) * x[0]))(np.array([2.0, 3.0]))
    assert kinds(d) == [((1,), "detached")]
    assert d.causes[0].fix


@pytest.mark.parametrize("flat", [np.sign, np.floor, np.round, lambda x: (x > 0) * 1.0])
def test_flat_operations(flat) -> None:
    d = gg.why(lambda x: np.sum(flat(x)))(np.array([0.7, -1.2]))
    assert kinds(d) == [((slice(None),), "flat")]


def test_multiplied_by_zero_is_flat() -> None:
    d = gg.why(lambda x: np.sum(x * np.array([1.0, 0.0])))(np.array([2.0, 3.0]))
    assert kinds(d) == [((1,), "flat")]
    assert "multiplied by 0" in d.causes[0].detail


def test_saturated_function_underflows() -> None:
    d = gg.why(lambda x: np.sum(np.tanh(x)))(np.array([0.5, 40.0]))
    assert kinds(d) == [((1,), "underflow")]
    d = gg.why(lambda x: np.sum(gg.nn.Sigmoid()(x)))(np.array([0.5, -800.0]))
    assert kinds(d) == [((1,), "underflow")]


def test_product_of_derivatives_underflows_and_says_where() -> None:
    def chain(x):
        for _ in range(200):
            x = x * 1e-3
        return x

    d = gg.why(chain)(1.0)
    assert kinds(d) == [((), "underflow")]
    # 1e-3 ** 100 = 1e-300: the 100th step back from the output goes below 1e-300
    assert "100 operations from the output" in d.causes[0].detail
    assert "1e-300" in d.causes[0].detail


def test_nan_through_the_untaken_branch_of_where() -> None:
    d = gg.why(lambda x: np.sum(np.where(x > 0, np.sqrt(x), 0.0)))(np.array([4.0, -1.0]))
    assert kinds(d) == [((1,), "nan")]
    cause = d.causes[0]
    assert "sqrt" in cause.op and "-1" in cause.detail
    assert "np.where(x > 0, x, 1.0)" in cause.fix


def test_inf_names_the_operation_and_its_input() -> None:
    d = gg.why(lambda x: np.sum(np.sqrt(x)))(np.array([4.0, 0.0, 9.0]))
    assert kinds(d) == [((1,), "inf")]
    assert d.causes[0].op.startswith("sqrt") and "input 0" in d.causes[0].detail


def test_nan_inherited_along_a_chain_is_traced_to_its_origin() -> None:
    def f(x):
        h = np.log(x)  # derivative 1/x: NaN for x = nan? no: x = -1 gives -1, finite
        return np.sum(np.sqrt(h) * 2.0)

    d = gg.why(f)(np.array([2.0, 0.5]))  # log(0.5) < 0: sqrt of a negative number
    assert kinds(d) == [((1,), "nan")]
    assert d.causes[0].op.startswith("sqrt")


def test_unused_elements_and_arguments() -> None:
    d = gg.why(lambda x: x[0] * 2.0)(np.array([1.0, 2.0, 3.0]))
    assert kinds(d) == [((slice(1, 3),), "unused")]
    assert "indexing" in d.causes[0].detail
    d = gg.why(lambda x, y: np.sum(x), argnums=1)(np.array([1.0]), np.array([1.0, 2.0]))
    assert kinds(d) == [((slice(None),), "unused")]


def test_cancelling_uses_are_flat() -> None:
    d = gg.why(lambda x: np.sum(x * 2.0 - x - x))(np.array([1.0, 2.0]))
    assert [c.kind for c in d.causes] == ["flat"]
    assert "cancel" in d.causes[0].detail


def test_ordinary_gradients_are_not_listed() -> None:
    d = gg.why(lambda x: np.sum(np.sin(x) * x))(np.array([0.3, 1.2]))
    assert not d and d.causes == []
    assert "nothing to explain" in str(d)
    np.testing.assert_allclose(d.gradient, np.cos([0.3, 1.2]) * [0.3, 1.2] + np.sin([0.3, 1.2]))


def test_report_text_and_notebook_display() -> None:
    d = gg.why(lambda x: np.sum(np.maximum(x, 0.0)))(np.array([1.0, -2.0]))
    assert d and len(d) == 1
    text = str(d)
    assert "1 zero of 2 gradient elements" in text and "fix:" in text and "[1]  relu" in text
    page = d._repr_html_()
    assert "<table>" in page and "relu" in page and "&lt;" not in page.split("<table>")[0]


def test_runs_of_a_matrix_share_one_cause() -> None:
    w = np.ones((3, 4))
    x = np.array([[1.0, 0.0, 2.0], [3.0, 0.0, 1.0]])  # feature 1 is 0 in every sample
    d = gg.why(lambda w: np.sum(np.tanh(x @ w)))(w)
    assert kinds(d) == [((1, slice(None)), "flat")]
    assert "column 1" in d.causes[0].detail


def test_dict_arguments_name_their_leaves() -> None:
    params = {"w": np.array([1.0, -1.0]), "b": np.array(0.5)}
    d = gg.why(lambda p: np.sum(np.maximum(p["w"], 0.0)) * 2.0)(params)
    assert [(c.index, c.kind) for c in d.causes] == [
        (("p['w']", (1,)), "relu"), (("p['b']", ()), "unused")]
    assert "p['w'][1]" in str(d)


def test_float32_and_a_long_chain() -> None:
    def f(x):
        for _ in range(3000):
            x = x * 1.0
        return np.sum(np.maximum(x, 0.0))

    d = gg.why(f)(np.array([1.0, -1.0], dtype=np.float32))
    assert kinds(d) == [((1,), "relu")]


def test_the_eager_hot_path_is_restored() -> None:
    original = gg.Tensor._process
    with pytest.raises(ZeroDivisionError):
        gg.why(lambda x: 1 / 0)(1.0)
    gg.why(lambda x: x * 2.0)(1.0)
    assert gg.Tensor._process is original
    assert why_module._USERS == [0]


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_check_grad_embeds_the_diagnosis() -> None:
    def f(x):
        return np.sum(np.where(x > 0, np.sqrt(x), 0.0))

    with pytest.raises(gg.GradientCheckError) as info:
        gg.check_grad(f, np.array([4.0, -1.0]))
    assert info.value.diagnosis is not None
    assert [c.kind for c in info.value.diagnosis.causes] == ["nan"]
    assert "gg.why" in str(info.value) and "fix:" in str(info.value)


def test_detect_anomaly_points_to_why() -> None:
    with pytest.raises(FloatingPointError, match=r"'sqrt' produced Inf.*gg\.why\(f\)"):
        with gg.detect_anomaly():
            gg.grad(lambda x: np.sum(np.sqrt(x)))(np.array([0.0, 1.0]))


def test_a_non_scalar_output_is_refused() -> None:
    with pytest.raises(TypeError, match="why"):
        gg.why(lambda x: x * 2)(np.array([1.0, 2.0]))
