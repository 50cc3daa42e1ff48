"""Tests for glassgrad.graph: the recorded graph, its gradients, listing and drawing."""

from __future__ import annotations

import re
import shutil
import sys
import types

import numpy as np
import pytest

import glassgrad as gg
from glassgrad.graph import MAX_NODES, Graph, trace


def f(x, y):
    return x * y + np.sin(x)


def test_nodes_in_order_with_shapes_values_and_gradients():
    g = trace(f)(2.0, 3.0)
    assert isinstance(g, Graph)
    assert [n.op for n in g.nodes] == ["input", "input", "mul", "sin", "add"]
    assert [n.id for n in g.nodes] == list(range(5))
    assert [n.name for n in g.inputs] == ["x", "y"]
    assert g.output is g.nodes[-1]
    assert g.nodes[2].inputs == (0, 1) and g.nodes[4].inputs == (2, 3)
    assert all(n.shape == () and n.dtype == "float64" for n in g.nodes)
    assert g.output.value == pytest.approx(6 + np.sin(2.0))
    gx, gy = gg.grad(f, argnums=(0, 1))(2.0, 3.0)
    assert g.inputs[0].grad == pytest.approx(gx) and g.inputs[1].grad == pytest.approx(gy)
    assert [n.grad for n in g.nodes[2:]] == [1.0, 1.0, 1.0]


def test_edges_show_the_chain_rule():
    g = trace(f)(2.0, 3.0)
    assert [(e.src, e.dst, e.argnum) for e in g.edges] == [(0, 2, 0), (1, 2, 1), (0, 3, 0),
                                                         (2, 4, 0), (3, 4, 1)]
    sin_edge = g.edges[2]
    assert sin_edge.local == pytest.approx(np.cos(2.0))
    for e in g.edges:  # what is sent along an edge = gradient at its head * local derivative
        assert e.grad == pytest.approx(g.nodes[e.dst].grad * e.local)
    # the gradient at a node is the sum of what its out-edges send
    assert sum(e.grad for e in g.edges if e.src == 0) == pytest.approx(g.inputs[0].grad)


def test_arrays_constants_and_intermediate_gradients():
    w = np.array([1.0, -2.0, 0.5])

    def h(x):
        return np.sum(np.tanh(x) * w)

    x = np.array([0.1, 0.2, 0.3])
    g = trace(h)(x)
    assert [n.op for n in g.nodes] == ["input", "tanh", "const", "mul", "sum"]
    tanh, const = g.nodes[1], g.nodes[2]
    assert const.value is w and const.grad is None
    assert tanh.shape == (3,) and np.allclose(tanh.value, np.tanh(x))
    assert np.allclose(tanh.grad, w)  # d out / d tanh(x)
    assert np.allclose(g.inputs[0].grad, gg.grad(h)(x))
    const_edge = next(e for e in g.edges if e.src == const.id)
    assert const_edge.grad is None and const_edge.local is None
    assert next(e for e in g.edges if e.src == tanh.id).local is None  # not scalar-to-scalar


def test_input_used_twice_and_unused_input():
    g = trace(lambda x, y: x * x)(3.0, 1.0)
    assert [e.grad for e in g.edges] == [3.0, 3.0]
    assert g.inputs[0].grad == 6.0 and g.inputs[1].grad == 0.0


def test_non_scalar_output_has_no_gradients_and_backward_can_be_skipped():
    g = trace(lambda x: x * 2.0)(np.ones(3))
    assert all(n.grad is None for n in g.nodes)
    g = trace(f, backward=False)(2.0, 3.0)
    assert all(n.grad is None for n in g.nodes) and all(e.grad is None for e in g.edges)


def test_argument_names_ints_and_pass_through():
    def k(params, xs, n, *, scale):
        return np.sum(params["w"] * xs[0]) * scale + n * xs[1]

    g = trace(k)({"w": np.ones(2)}, (np.arange(2.0), 3.0), 2, scale=0.5)
    assert [n.name for n in g.inputs] == ["params['w']", "xs[0]", "xs[1]", "n", "scale"]
    assert g.inputs[3].dtype == "float64"  # a Python int becomes a float input
    g = trace(lambda x, label: x * len(label))(2.0, "abc")  # non-numbers pass through
    assert [n.name for n in g.inputs] == ["x"] and g.output.value == 6.0


def test_constant_output_and_identity():
    g = trace(lambda x: 5.0)(1.0)
    assert g.output.op == "const" and g.output.value == 5.0
    g = trace(lambda x: x)(1.0)
    assert g.output is g.inputs[0] and g.output.grad == 1.0


def test_float32_and_nested_transforms():
    g = trace(lambda x: np.sum(x ** 2))(np.ones(2, dtype=np.float32))
    assert g.inputs[0].dtype == "float32" and g.inputs[0].grad.dtype == np.float32

    def inner(x):  # a transform inside the traced function
        return x * gg.grad(np.sin)(x)

    g = trace(inner)(0.5)
    assert g.inputs[0].grad == pytest.approx(gg.grad(inner)(0.5))


def test_container_output_is_refused():
    with pytest.raises(TypeError, match="one array output"):
        trace(lambda x: (x, x))(1.0)


def test_listing_reads_like_flat_ir():
    text = str(trace(lambda t, x, y: 4 * np.pi / 3 * t * x * y)(1.0, 2.0, 3.0))
    lines = text.splitlines()
    assert lines[0].startswith("%0 = input t") and "grad 25.13" in lines[0]
    assert re.match(r"%4 = mul\(4\.189, %0\)\s+shape \(\) float64", lines[3])
    assert re.match(r"%6 = mul\(%5, %2\)", lines[5]) and lines[-1] == "return %6"
    text = str(trace(lambda x: np.sum(x, axis=0))(np.ones((2, 2))))
    assert "sum(%0, axis=0)" in text and "keepdims" not in text


def test_dot_text():
    dot = trace(f)(2.0, 3.0).to_dot()
    assert dot.startswith("digraph glassgrad {") and dot.rstrip().endswith("}")
    for op in ("mul", "sin", "add"):
        assert f'label="{op}\\n() float64' in dot
    assert 'label="x\\ninput\\n() float64\\nvalue 2\\ngrad 2.584"' in dot
    assert "n0 -> n2" in dot and 'local 3\\ngrad 3' in dot
    big = trace(lambda x: x * 2.0)(np.arange(12.0)).to_dot()
    mul = re.search(r'^  n2 \[label="([^"]*)"', big, flags=re.M).group(1)
    assert mul == "mul\\n(12,) float64"  # values of more than a few elements are left out
    assert 'c2_1 [label="2", shape=plaintext' in big and "c2_1 -> n2;" in big
    quoted = trace(lambda d: d['a"b'] * 2.0)({'a"b': 1.0}).to_dot()
    assert "d['a\\\"b']" in quoted


def chain(x, n=500):
    for _ in range(n):
        x = np.sin(x) + 0.5
    return x


def test_repeats_are_drawn_and_listed_once_with_their_count():
    g = trace(chain)(0.3)
    assert len(g.nodes) > 1000  # the graph keeps every node
    [r] = g.repeats()
    assert (r.period, r.count) == (2, 499)
    assert [g.nodes[i].op for i in r.blocks[0]] == ["add", "sin"]
    assert r.blocks[1][0] == r.blocks[0][-1] + 1  # back to back
    dot = g.to_dot()
    drawn = re.findall(r"^\s+n\d+ \[(?!.*plaintext)", dot, flags=re.M)  # constants aside
    assert len(drawn) == 5  # x, the first sin, the block of two, the output
    assert "× 499: 2 operations repeated" in dot and "subgraph cluster_r0" in dot
    assert 'label="next", constraint=false' in dot and "omitted" not in dot
    out = g.output.id  # a shared constant is drawn at each use
    assert f'c{out}_1 [label="0.5", shape=plaintext' in dot
    text = str(g)
    assert "repeat 499 times in all" in text and len(text.splitlines()) < 10
    assert len(g.to_text(max_nodes=None).splitlines()) == 1001 + 1
    assert g.inputs[0].grad == pytest.approx(gg.grad(chain)(0.3))


def test_large_graph_without_repeats_is_capped_with_a_note():
    def shrinking(x):
        for _ in range(300):  # every step has another shape: nothing repeats
            x = x[1:] * 1.5
        return np.sum(x)

    g = trace(shrinking)(np.ones(301))
    ops = sum(n.op not in ("input", "const") for n in g.nodes)
    assert g.repeats() == [] and ops == 601
    dot = g.to_dot()
    drawn = re.findall(r"^  n\d+ \[(?!.*plaintext)", dot, flags=re.M)
    assert len(drawn) == MAX_NODES and f"{ops - (MAX_NODES - 1)} operations omitted" in dot
    assert "n0 [" in dot and f"n{g.output.id} [" in dot  # inputs and output stay
    assert "omitted -> n" in dot and "n0 -> omitted" in dot
    text = str(g)
    assert "operations omitted" in text and len(text.splitlines()) <= MAX_NODES + 3
    assert len(g.to_text(max_nodes=None).splitlines()) > len(text.splitlines())
    uncollapsed = trace(chain)(0.3).to_dot(collapse=False)
    assert "801 operations omitted" in uncollapsed and "cluster" not in uncollapsed


def w1_chain(x):  # bench/w1_op_overhead.py: 25 x (sin, * 1.01, + 0.1, tanh)
    for _ in range(25):
        x = np.tanh(np.sin(x) * 1.01 + 0.1)
    return np.sum(x)


def test_the_w1_chain_collapses():
    g = trace(w1_chain)(np.linspace(-1.0, 1.0, 1000))
    assert [(r.period, r.count) for r in g.repeats()] == [(4, 24)]
    dot = g.to_dot()
    assert dot.count(" [label=") - dot.count("plaintext") == 10
    assert 'size="15,15"' in dot  # Graphviz scales anything larger down


def test_the_w1_chain_fits_in_1500_pixels(tmp_path):
    pytest.importorskip("graphviz")
    if shutil.which("dot") is None:
        pytest.skip("Graphviz's dot program is not installed")
    svg = trace(w1_chain)(np.linspace(-1.0, 1.0, 1000))._repr_svg_()
    width, height = (float(v) for v in re.search(r'<svg width="([\d.]+)pt" height="([\d.]+)pt"',
                                                 svg).groups())
    assert width * 4 / 3 <= 1500 and height * 4 / 3 <= 1500  # 1 pt = 4/3 px


def mlp():
    layers = []
    for k in range(6):
        layers += [gg.nn.Linear(3, 3, rng=np.random.default_rng(k)), gg.nn.Tanh()]
    return gg.nn.Sequential(*layers)


def test_modules_are_clusters_and_parameters_are_named():
    net = mlp()
    g = trace(net)(np.ones((2, 3)))  # a module traces with its own modules
    ops = [n for n in g.nodes if n.op not in ("input", "const")]
    assert [(n.op, n.module) for n in ops[:3]] == [("matmul", "0"), ("add", "0"),
                                                   ("tanh", "")]
    assert g.modules["0"] == "Linear"
    params = {n.name for n in g.nodes if n.op == "const"}
    assert {"0.weight", "0.bias", "10.weight"} <= params
    g = trace(lambda x: np.sum(net(x)), modules=net)(np.ones((2, 3)))
    assert [(r.period, r.count) for r in g.repeats()] == [(3, 5)]  # layers 2 to 10
    dot = g.to_dot()
    assert 'label="0 (Linear)"' in dot and 'label="2 (Linear)"' in dot
    assert "× 5" in dot and 'label="0.weight\\n(3, 3) float64"' in dot
    assert "%1 = param 0.weight" in g.to_text()
    plain = trace(lambda x: np.sum(net(x)))(np.ones((2, 3)))
    assert all(n.module == "" for n in plain.nodes) and "Linear" not in plain.to_dot()


def test_notebook_view_without_graphviz_is_a_listing(monkeypatch):
    monkeypatch.setitem(sys.modules, "graphviz", None)
    g = trace(chain)(0.3)
    page = g._repr_html_()
    assert page.startswith("<div>") and "<pre" in page and "repeat 499 times" in page
    assert "&lt;Graph: 1 inputs" in page and "Install Graphviz" in page


def test_render_without_graphviz_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "graphviz", None)
    g = trace(f)(2.0, 3.0)
    with pytest.raises(ImportError, match=r'pip install "glassgrad\[viz\]".*apt-get install'):
        g.render(tmp_path / "g.svg")
    assert g._repr_svg_() is None


def _fake_graphviz(pipe):
    module = types.ModuleType("graphviz")

    class ExecutableNotFound(RuntimeError):
        pass

    class Source:
        def __init__(self, source):
            self.source = source

        def pipe(self, format):
            return pipe(self.source, format, ExecutableNotFound)

    module.ExecutableNotFound = ExecutableNotFound
    module.Source = Source
    return module


def test_render_without_dot_program(monkeypatch, tmp_path):
    def missing(source, fmt, error):
        raise error("failed to execute 'dot'")

    monkeypatch.setitem(sys.modules, "graphviz", _fake_graphviz(missing))
    g = trace(f)(2.0, 3.0)
    with pytest.raises(RuntimeError, match="apt-get install graphviz"):
        g.render(tmp_path / "g.png")
    assert g._repr_svg_() is None


def test_render_writes_the_file(monkeypatch, tmp_path):
    calls = []

    def fake(source, fmt, error):
        calls.append(fmt)
        return b"<svg>" + source.encode()[:9] + b"</svg>"

    monkeypatch.setitem(sys.modules, "graphviz", _fake_graphviz(fake))
    g = trace(f)(2.0, 3.0)
    assert g.render(tmp_path / "g.png").read_bytes().startswith(b"<svg>digraph")
    g.render(tmp_path / "g", format="pdf")
    assert calls == ["png", "pdf"] and (tmp_path / "g").exists()
    assert g._repr_svg_() == "<svg>digraph g</svg>"
    assert g._repr_html_() == "<svg>digraph g</svg>" and calls == ["png", "pdf", "svg"]


def test_render_with_real_graphviz(tmp_path):
    pytest.importorskip("graphviz")
    if shutil.which("dot") is None:
        pytest.skip("Graphviz's dot program is not installed")
    g = trace(f)(2.0, 3.0)
    assert b"<svg" in g.render(tmp_path / "g.svg").read_bytes()
    assert "<svg" in g._repr_svg_()
