"""W3b on a GPU: one training step of a 1024-1024-1024 MLP on a 4096 batch, float32, with
glassgrad on CuPy arrays side by side with PyTorch CUDA.

glassgrad's step is ``gg.jit(gg.value_and_grad(loss))`` on CuPy arrays: the program calls
NumPy's functions, which hand every call to CuPy through NumPy's protocols, so the whole
step stays on the device. The goal: within 1.3x of PyTorch CUDA. It needs a machine with
a CUDA GPU, CuPy (``pip install 'glassgrad[gpu]'``) and a CUDA build of PyTorch; elsewhere
it says what is missing and exits. Run:
``env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/gpu.py``.
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))

BATCH, WIDTH, STEPS, REPEAT = 4096, 1024, 20, 5


def _best(step, sync) -> float:
    step(), sync()  # warm-up: compiles kernels, fills the memory pools
    times = []
    for _ in range(REPEAT):
        sync()
        start = time.perf_counter()
        for _ in range(STEPS):
            step()
        sync()
        times.append((time.perf_counter() - start) / STEPS)
    return min(times)


def glassgrad_cupy() -> float:
    import cupy as cp

    import glassgrad as gg

    rng = np.random.default_rng(0)
    shapes = [(WIDTH, WIDTH)] * 3
    params = [cp.asarray(rng.normal(0, WIDTH ** -0.5, s).astype(np.float32)) for s in shapes]
    x = cp.asarray(rng.normal(size=(BATCH, WIDTH)).astype(np.float32))
    y = cp.asarray(rng.normal(size=(BATCH, WIDTH)).astype(np.float32))

    def loss(params, x, y):
        h = x
        for w in params[:-1]:
            h = np.tanh(h @ w)
        return np.mean((h @ params[-1] - y) ** 2)

    step = gg.jit(gg.value_and_grad(loss))
    state = {"p": params}

    def run():
        _, grads = step(state["p"], x, y)
        state["p"] = [p - np.float32(0.01) * g for p, g in zip(state["p"], grads, strict=True)]
        assert isinstance(grads[0], cp.ndarray)

    return _best(run, cp.cuda.Device().synchronize)


def torch_cuda() -> float:
    import torch

    torch.manual_seed(0)
    dev = torch.device("cuda")
    params = [(torch.randn(WIDTH, WIDTH, device=dev) * WIDTH ** -0.5).requires_grad_()
              for _ in range(3)]
    x = torch.randn(BATCH, WIDTH, device=dev)
    y = torch.randn(BATCH, WIDTH, device=dev)
    opt = torch.optim.SGD(params, lr=0.01)

    def run():
        opt.zero_grad()
        h = x
        for w in params[:-1]:
            h = torch.tanh(h @ w)
        ((h @ params[-1] - y) ** 2).mean().backward()
        opt.step()

    return _best(run, torch.cuda.synchronize)


def main() -> int:
    try:
        import cupy as cp
        if cp.cuda.runtime.getDeviceCount() < 1:
            raise RuntimeError("no CUDA device")
    except Exception as e:  # not installed, or no GPU
        print(f"W3b (GPU) not run: CuPy with a CUDA device is not available ({e})")
        return 0
    t_gg = glassgrad_cupy()
    try:
        t_torch = torch_cuda()
    except Exception as e:
        print(f"glassgrad on CuPy: {t_gg * 1e3:.2f} ms per step; PyTorch CUDA not run ({e})")
        return 0
    print(f"W3b, {BATCH}-batch {WIDTH}^3 MLP step, float32: glassgrad on CuPy "
          f"{t_gg * 1e3:.2f} ms, PyTorch CUDA {t_torch * 1e3:.2f} ms, ratio "
          f"{t_gg / t_torch:.2f}x (goal: at most 1.3x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
