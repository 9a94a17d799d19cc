"""Data-parallel training through Hugging Face accelerate: two CPU processes (gloo)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from sphereml.training.batching import BatchIterator

WORKER = Path(__file__).with_name("distributed_worker.py")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_shards_partition_every_batch():
    data = {"x": np.arange(100, dtype=np.float32)[:, None]}
    dataset = type("D", (), {"X": data, "y": np.arange(100)})()
    batches = [
        list(BatchIterator(dataset, 16, shuffle=True, seed=3, shard=(rank, 3))) for rank in range(3)
    ]
    whole = list(BatchIterator(dataset, 16, shuffle=True, seed=3))
    assert len(batches[0]) == len(batches[1]) == len(batches[2]) == len(whole)
    for step, (_, y_all) in enumerate(whole):
        parts = [batches[rank][step][1] for rank in range(3)]
        assert sorted(torch.cat(parts).tolist()) == sorted(y_all.tolist())
    # a last batch smaller than the number of processes is skipped by all of them
    assert len(list(BatchIterator(dataset, 99, shard=(0, 2)))) == 1


@pytest.mark.parametrize("name", ["SphericalClassifier", "NDMClassifier"])
def test_two_processes_average_gradients_like_one_process(tmp_path, name):
    pytest.importorskip("accelerate")
    from distributed_worker import fit  # tests/ is on sys.path (rootdir conftest)

    port = str(_free_port())
    processes = []
    for rank in range(2):
        env = {
            **os.environ,
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": port,
            "RANK": str(rank),
            "LOCAL_RANK": str(rank),
            "WORLD_SIZE": "2",
            "OMP_NUM_THREADS": "1",
        }
        processes.append(
            subprocess.Popen(
                [sys.executable, str(WORKER), name, str(tmp_path)],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        )
    for process in processes:
        output, _ = process.communicate(timeout=240)
        assert process.returncode == 0, output
    ranks = [np.load(tmp_path / f"rank{r}.npz") for r in range(2)]
    assert int(ranks[0]["n_processes"]) == 2
    # Each process took half of every global batch of 64; the all-reduced (averaged)
    # gradient is the gradient of the whole batch's mean loss, so both processes hold
    # the single-process model, up to float32 round-off.
    reference = fit(name)
    expected = {k: v.detach().numpy() for k, v in reference.net_.module_.state_dict().items()}
    for key, value in expected.items():
        np.testing.assert_array_equal(ranks[0][f"weight:{key}"], ranks[1][f"weight:{key}"])
        np.testing.assert_allclose(ranks[0][f"weight:{key}"], value, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(ranks[0]["loss_curve"], reference.loss_curve_, rtol=1e-5)


def test_one_process_accelerator_and_persistence():
    accelerate = pytest.importorskip("accelerate")
    import pickle

    from distributed_worker import fit

    accelerator = accelerate.Accelerator(cpu=True)
    model = fit("SphericalClassifier", accelerator)
    plain = fit("SphericalClassifier")
    X = np.random.default_rng(0).normal(size=(20, 6))
    np.testing.assert_allclose(model.predict_proba(X), plain.predict_proba(X), atol=1e-6)
    # the accelerator is the launch's state, not the model's: it is not saved
    copy_ = pickle.loads(pickle.dumps(model))
    assert copy_.accelerator is None
    np.testing.assert_array_equal(copy_.predict_proba(X), model.predict_proba(X))
    # a warm start re-wraps the module and continues
    model.set_params(warm_start=True, max_epochs=1).fit(*_blobs())
    assert model.n_iter_ >= 1


def _blobs():
    from sphereml.datasets import make_vmf_blobs

    return make_vmf_blobs(480, 6, centers=3, kappa=5.0, random_state=0)
