"""Data-parallel and out-of-core training on Dask arrays (SPEC §11), on LocalClusters that
the tests start and stop themselves."""

import numpy as np
import pytest

import glassgrad as gg
from glassgrad.nn import distributed

da = pytest.importorskip("dask.array")
dask = pytest.importorskip("dask")
dd = pytest.importorskip("dask.distributed")


@pytest.fixture(scope="module")
def client():
    with dd.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                         dashboard_address=None) as cluster, dd.Client(cluster) as c:
        yield c


RNG = np.random.default_rng(0)
X = RNG.normal(size=(600, 4))
Y = np.tanh(X @ RNG.normal(size=4)) + 0.1 * RNG.normal(size=600)


def _train(X, y, **kwargs):
    net = gg.nn.MLP([4, 8, 1], rng=0)
    opt = gg.optim.Adam(net.parameters(), lr=0.05)
    history = gg.nn.fit(net, X, y, gg.nn.mse_loss, opt, progress=False, **kwargs)
    return [p.data.copy() for p in net.parameters()], history.loss


def test_full_batch_training_equals_numpy(client):
    want, want_loss = _train(X, Y, epochs=4, batch_size=len(X), shuffle=False)
    got, got_loss = _train(da.from_array(X, chunks=(70, 4)), da.from_array(Y, chunks=70),
                           epochs=4, batch_size=None, shuffle=False)
    for a, b in zip(got, want, strict=True):
        assert type(a) is np.ndarray
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(got_loss, want_loss, rtol=1e-12)


def test_shuffled_minibatches_equal_numpy(client):
    kwargs = dict(epochs=2, batch_size=250, shuffle=True, seed=7)
    want, _ = _train(X, Y, **kwargs)
    got, _ = _train(da.from_array(X, chunks=(100, 4)), da.from_array(Y, chunks=100), **kwargs)
    for a, b in zip(got, want, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


def test_train_step_on_dask_equals_numpy(client):
    results = []
    for x, y in ((X, Y[:, None]), (da.from_array(X, chunks=(90, 4)),
                                   da.from_array(Y[:, None], chunks=(90, 1)))):
        net = gg.nn.MLP([4, 8, 1], rng=0)
        step = gg.nn.TrainStep(net, gg.nn.mse_loss, gg.optim.SGD(net.parameters(), lr=0.1))
        losses = [step(x, y) for _ in range(3)]
        results.append((losses, [p.data.copy() for p in net.parameters()]))
    np.testing.assert_allclose(results[1][0], results[0][0], rtol=1e-12)
    for a, b in zip(results[1][1], results[0][1], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


def test_the_parameters_are_one_key_and_the_sum_a_fixed_tree():
    net = gg.nn.MLP([4, 3, 1], rng=0)
    x, y = da.from_array(X, chunks=(100, 4)), da.from_array(Y, chunks=100)
    graph = dict(distributed.step_graph(net, gg.nn.mse_loss, x, y).__dask_graph__())
    holding_model = [k for k, v in graph.items() if v is net or getattr(v, "value", None) is net]
    assert len(holding_model) == 1  # shipped once per step, read by every chunk's task
    chunk_tasks = [k for k in graph if str(k).startswith("_chunk")]
    adds = [k for k in graph if str(k).startswith("_add")]
    assert len(chunk_tasks) == 6 and len(adds) == 5  # a binary tree over 6 chunks


def test_the_order_of_finishing_does_not_change_the_sum():
    net = gg.nn.MLP([4, 3, 1], rng=0)
    x, y = da.from_array(X, chunks=(50, 4)), da.from_array(Y, chunks=50)
    with dask.config.set(scheduler="threads", num_workers=4):
        runs = [distributed.loss_and_grads(net, gg.nn.mse_loss, x, y) for _ in range(3)]
    for value, grads in runs[1:]:
        assert value == runs[0][0]
        for a, b in zip(grads, runs[0][1], strict=True):
            np.testing.assert_array_equal(a, b)


def test_misaligned_or_wrong_inputs_are_refused():
    net = gg.nn.MLP([4, 1], rng=0)
    opt = gg.optim.SGD(net.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="samples"):
        gg.nn.fit(net, da.from_array(X, chunks=(100, 4)), Y[:10], gg.nn.mse_loss, opt, epochs=1)


def _lazy_data(n, d, chunk, seed):
    """Rows generated on the workers, chunk by chunk: never all in one place."""
    rs = da.random.default_rng(seed)
    X = rs.normal(size=(n, d), chunks=(chunk, d))
    w = np.linspace(-1.0, 1.0, d)
    y = (X @ w + 0.5 * rs.normal(size=n, chunks=chunk) > 0).astype(float)
    return X, y


class LogisticRegression(gg.nn.Module):
    def __init__(self, d):
        super().__init__()
        self.linear = gg.nn.Linear(d, 1, rng=0)

    def forward(self, x):
        return self.linear(x)


def test_out_of_core_logistic_regression_and_mlp():
    # 2.4e6 x 20 float64 rows: 384 MB of data, generated lazily on two worker processes
    # of 350 MB each (a worker process starts near 150 MB), trained full-batch.
    n, d = 2_400_000, 20
    X, y = _lazy_data(n, d, 50_000, seed=1)  # 8 MB chunks: the MLP tape fits beside them
    assert X.nbytes > 350e6
    with dd.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                         memory_limit="350MB", dashboard_address=None) as cluster, \
            dd.Client(cluster):
        model = LogisticRegression(d)
        opt = gg.optim.SGD(model.parameters(), lr=1.0)
        h = gg.nn.fit(model, X, y, gg.nn.binary_cross_entropy_with_logits, opt, epochs=2,
                      batch_size=None, shuffle=False)
        assert h.loss[-1] < h.loss[0]
        net = gg.nn.MLP([d, 16, 16, 1], rng=0)  # the seed's network, widened to d inputs
        opt = gg.optim.Adam(net.parameters(), lr=0.05)
        h = gg.nn.fit(net, X, y, gg.nn.binary_cross_entropy_with_logits, opt, epochs=2,
                      batch_size=None, shuffle=False)
        assert h.loss[-1] < h.loss[0]


def test_value_and_gradient_are_one_small_lazy_graph():
    # 4e5 x 20 rows: 64 MB of data, generated lazily. The backward pass of mean must
    # broadcast its cotangent lazily, never embed a constant as long as the data.
    import pickle

    X, y = _lazy_data(400_000, 20, 50_000, seed=2)

    def loss(w, X, y):
        z = X @ w
        return np.mean(np.logaddexp(0.0, z) - y * z)

    value, g = gg.value_and_grad(loss)(np.full(20, 0.1), X, y)
    assert isinstance(value, da.Array) and isinstance(g, da.Array)
    graph = {**dict(value.__dask_graph__()), **dict(g.__dask_graph__())}
    assert len(pickle.dumps(graph)) < 200_000
    with dask.config.set(scheduler="synchronous"):
        v, gv = dask.compute(value, g)
    Xn, yn = dask.compute(X, y, scheduler="synchronous")
    want_v, want_g = gg.value_and_grad(loss)(np.full(20, 0.1), Xn, yn)
    np.testing.assert_allclose(v, want_v, rtol=1e-12)
    np.testing.assert_allclose(gv, want_g, rtol=1e-10)
