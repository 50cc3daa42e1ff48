"""Checkpoint: peak memory and time of grad through 20 blocks, plain and checkpointed.

Each block is six layers h = tanh(h @ w) on a (256, 256) float64 activation (512 KiB);
the loss is sum(h**2) after 20 blocks, differentiated with respect to w. The plain chain
keeps every layer's matmul and tanh outputs for the backward pass (240 arrays); with
``gg.checkpoint(block)`` the tape keeps the 20 block inputs, and each block's layers are
recomputed, one block at a time, when the backward pass reaches it. Peak memory is
tracemalloc's (exact for NumPy buffers); the goal is at most a fifth of the plain peak.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/checkpoint_memory.py
"""

from __future__ import annotations

import common
import numpy as np

gg = common.load_glassgrad()

BLOCKS, LAYERS, ROWS, WIDTH = 20, 6, 256, 256


def block(h, w):
    for _ in range(LAYERS):
        h = np.tanh(h @ w)
    return h


def loss_of(blk):
    def loss(w, x):
        h = x
        for _ in range(BLOCKS):
            h = blk(h, w)
        return np.sum(h ** 2)

    return loss


def data():
    rng = np.random.default_rng(0)
    return rng.standard_normal((WIDTH, WIDTH)) / np.sqrt(WIDTH), rng.standard_normal((ROWS, WIDTH))


def worker(name: str) -> dict:
    w, x = data()
    blk = gg.checkpoint(block) if name == "checkpointed" else block
    grad = gg.grad(loss_of(blk))
    g = grad(w, x)
    return {"peak": common.traced_peak(lambda: grad(w, x)),
            "time": common.measure(lambda: grad(w, x), repeat=3).best,
            "sum": float(np.sum(g))}


def table(answers: dict) -> None:
    plain = answers["plain"]
    rows = [[name, common.fmt_bytes(m["peak"]), common.fmt_ratio(m["peak"], plain["peak"]),
             common.fmt_time(m["time"]), common.fmt_ratio(m["time"], plain["time"])]
            for name, m in answers.items()]
    common.print_table(f"grad through {BLOCKS} blocks of {LAYERS} tanh layers, "
                       f"activations ({ROWS}, {WIDTH}) float64",
                       ["chain", "peak memory", "vs plain", "time", "vs plain"], rows)
    if "checkpointed" in answers:
        ratio = answers["checkpointed"]["peak"] / plain["peak"]
        same = answers["checkpointed"]["sum"] == plain["sum"]
        print(f"\nGoal (peak at most a fifth of the plain chain's): {common.goal(ratio, 0.2)}; "
              f"gradients {'bit-identical' if same else 'DIFFER'}")


def profile() -> None:
    w, x = data()
    print(common.profile_summary(lambda: gg.grad(loss_of(gg.checkpoint(block)))(w, x),
                                 calls=3))


def main() -> None:
    common.run_benchmark(__file__, __doc__.splitlines()[0], ["plain", "checkpointed"], worker,
                         lambda answers: table(answers) if "plain" in answers else None,
                         profile)


if __name__ == "__main__":
    main()
