"""Whether an ensemble's members gain from training in two threads on a 2-core CPU.

    python -m benchmarks.probes.member_threads --tables wisconsin banana

Default fits (median of three): the members as one stack with torch's threads; the same
with one torch thread; and the members cut into two stacks, each trained in its own
Python thread with one torch thread (what an ``n_jobs=2`` over threads would do). Also
the contention floor: 20,000 additions of a 64 × 32 tensor in each of two threads, one
after the other and at once.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor

import torch
from sklearn.preprocessing import StandardScaler

import sphereml.neural._ensembles as ensembles
from benchmarks import panel
from sphereml import NDMClassifier
from sphereml.training.lockstep import train_lockstep


def train_in_two_threads(nets, data) -> None:
    """``train_lockstep`` of the first and second half of the members in two threads."""
    half = (len(nets) + 1) // 2
    groups = [(nets[:half], data[:half]), (nets[half:], data[half:])]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with ThreadPoolExecutor(2) as pool:
            futures = [
                pool.submit(train_lockstep, n, d)
                if len(n) > 1
                else pool.submit(n[0].partial_fit, *d[0])
                for n, d in groups
            ]
            for future in futures:
                future.result()
    finally:
        torch.set_num_threads(threads)


def median_fit(X, y, repeats: int = 3) -> float:
    NDMClassifier(random_state=0).fit(X, y)  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        NDMClassifier(random_state=0).fit(X, y)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def contention() -> tuple[float, float]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)

    def work():
        a = torch.randn(64, 32)
        for _ in range(20_000):
            a = a + 1

    start = time.perf_counter()
    work()
    work()
    serial = time.perf_counter() - start
    start = time.perf_counter()
    pair = [threading.Thread(target=work) for _ in range(2)]
    for t in pair:
        t.start()
    for t in pair:
        t.join()
    torch.set_num_threads(threads)
    return serial, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tables", nargs="*", default=["wisconsin", "banana"])
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    print(f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}")
    serial, together = contention()
    print(f"two threads of small additions: {serial:.2f} s one after the other, "
          f"{together:.2f} s at once", flush=True)  # fmt: skip
    threads = torch.get_num_threads()
    for table in args.tables:
        X, y, _ = panel.load_table(table, 3000)
        X = StandardScaler().fit_transform(X)
        stack = median_fit(X, y)
        torch.set_num_threads(1)
        one_thread = median_fit(X, y)
        torch.set_num_threads(threads)
        ensembles.train_lockstep = train_in_two_threads
        try:
            split = median_fit(X, y)
        finally:
            ensembles.train_lockstep = train_lockstep
        print(f"{table:12s} NDMClassifier: one stack {stack:.2f} s ({threads} torch threads), "
              f"{one_thread:.2f} s (1 thread); two stacks in two threads {split:.2f} s",
              flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
