"""Run every benchmark (W1 to W10, checkpoint memory), each in its own process; flags pass through.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/run.py [--quick] [--profile]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS = ["w1_op_overhead.py", "w4_cheap_gradient.py", "w5_jacobians.py",
           "w2_seed_network.py", "w3_digits.py", "w6_moons.py", "w7_gp.py", "w8_per_example.py",
           "w9_dask.py", "w10_cnn.py", "checkpoint_memory.py"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a fast smoke run")
    parser.add_argument("--profile", action="store_true", help="cProfile the glassgrad cases")
    parser.add_argument("--threads", type=int, default=1, help="threads per library")
    parser.add_argument("--only", nargs="*", help="run only these scripts (e.g. w1 w4)")
    args = parser.parse_args()
    flags = [f for f, on in (("--quick", args.quick), ("--profile", args.profile)) if on]
    flags += ["--threads", str(args.threads)]
    failed = []
    for script in SCRIPTS:
        if args.only and not any(script.startswith(name) for name in args.only):
            continue
        print(f"\n## {script}\n", flush=True)
        start = time.perf_counter()
        code = subprocess.call([sys.executable, str(HERE / script), *flags])
        print(f"\n[{script}: exit {code}, {time.perf_counter() - start:.0f} s]", flush=True)
        if code:
            failed.append(script)
    if failed:
        print("failed: " + ", ".join(failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
