"""Saving and loading: skops with only sphereml types to trust, pickle/joblib, safetensors."""

from __future__ import annotations

import io
import pickle
import zipfile

import joblib
import numpy as np
import pytest
import torch

from sphereml import (
    NDMClassifier,
    NGPTTextClassifier,
    SphericalClassifier,
    SphericalKMeans,
    VMFMixture,
)

sio = pytest.importorskip("skops.io")

rng = np.random.default_rng(0)
X = rng.normal(size=(60, 3))
Y = np.array(["a", "b", "c"] * 20)
TEXTS = ["good movie", "bad movie", "fine film", "awful film"] * 5
YT = [1, 0, 1, 0] * 5
SMALL_TEXT = dict(d_model=8, n_layers=1, n_heads=2, max_length=8, max_epochs=2, random_state=0)

CASES = {
    "VMFMixture": (lambda: VMFMixture(3, random_state=0), X, None),
    "SphericalKMeans": (lambda: SphericalKMeans(3, random_state=0), X, None),
    "SphericalClassifier": (lambda: SphericalClassifier((4,), max_epochs=3, random_state=0), X, Y),
    # gradient clipping on: its callback must not reach the saved state
    "NDMClassifier": (
        lambda: NDMClassifier(max_epochs=3, max_grad_norm=10.0, random_state=0),
        X,
        Y,
    ),
    "NGPTTextClassifier": (lambda: NGPTTextClassifier(**SMALL_TEXT), TEXTS, YT),
    "NGPTTextClassifier-transformer": (
        lambda: NGPTTextClassifier("transformer", **SMALL_TEXT),
        TEXTS,
        YT,
    ),
}


@pytest.fixture(scope="module", params=list(CASES))
def fitted(request):
    make, data, target = CASES[request.param]
    return make().fit(data, target), data


def outputs(model, data):
    return model.predict_proba(data) if hasattr(model, "predict_proba") else model.transform(data)


def test_skops_trusts_only_sphereml_types(fitted):
    model, data = fitted
    blob = sio.dumps(model)
    untrusted = sio.get_untrusted_types(data=blob)
    assert untrusted and all(name.startswith("sphereml.") for name in untrusted), untrusted
    loaded = sio.loads(blob, trusted=untrusted)
    np.testing.assert_array_equal(outputs(loaded, data), outputs(model, data))


@pytest.mark.parametrize("engine", ["pickle", "joblib"])
def test_pickle_and_joblib_round_trip(fitted, engine):
    model, data = fitted
    if engine == "pickle":
        loaded = pickle.loads(pickle.dumps(model))
    else:
        buffer = io.BytesIO()
        joblib.dump(model, buffer)
        buffer.seek(0)
        loaded = joblib.load(buffer)
    np.testing.assert_array_equal(outputs(loaded, data), outputs(model, data))


class _Payload:
    """Unpickling this writes a file: the proof that a loader executed code."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (_touch, (self.path,))


def _touch(path):
    with open(path, "w") as f:
        f.write("executed")


def test_a_crafted_pickle_in_any_member_executes_nothing(fitted, tmp_path):
    model, _ = fitted
    blob = sio.dumps(model)
    trusted = sio.get_untrusted_types(data=blob)
    marker = tmp_path / "pwned"
    crafted = pickle.dumps(_Payload(marker))
    with zipfile.ZipFile(io.BytesIO(blob)) as archive:
        names = archive.namelist()
        contents = {name: archive.read(name) for name in names}
    assert len(names) > 1
    for victim in names:
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w") as archive:
            for name in names:
                archive.writestr(name, crafted if name == victim else contents[name])
        with pytest.raises(Exception):  # noqa: B017 - any refusal will do, nothing runs
            sio.loads(out.getvalue(), trusted=trusted)
        assert not marker.exists(), f"replacing {victim} made skops run code"


def test_a_cuda_trained_model_loads_without_cuda():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: the fallback is for machines without it")
    model = SphericalClassifier((4,), max_epochs=2, n_estimators=1, random_state=0).fit(X, Y)
    expected = model.predict_proba(X)
    state = model.__getstate__()
    state["device"] = "cuda"  # as saved by a model trained on a GPU
    loaded = SphericalClassifier.__new__(SphericalClassifier)
    loaded.__setstate__(state)
    assert loaded.net_.device == torch.device("cpu")
    np.testing.assert_allclose(loaded.predict_proba(X), expected, rtol=1e-6)


def test_loading_leaves_the_global_random_state_alone():
    model = NDMClassifier(max_epochs=2, random_state=0).fit(X, Y)
    blob = pickle.dumps(model)
    torch.manual_seed(123)
    before = torch.rand(3)
    torch.manual_seed(123)
    pickle.loads(blob)
    assert torch.equal(torch.rand(3), before)


def test_safetensors_export(tmp_path):
    safetensors = pytest.importorskip("safetensors.torch")
    model = NDMClassifier(max_epochs=2, random_state=0).fit(X, Y)
    path = tmp_path / "ndm.safetensors"
    model.save_weights(str(path))
    tensors = safetensors.load_file(str(path))
    state = model.net_.module_.state_dict()
    assert set(tensors) == set(state)
    for name, tensor in state.items():
        torch.testing.assert_close(tensors[name], tensor.cpu())


def test_a_warm_start_after_loading_continues(fitted):
    model, data = fitted
    if not hasattr(model, "net_"):
        pytest.skip("mixtures warm-start from their parameters, tested elsewhere")
    original = pickle.loads(pickle.dumps(model))  # two equal copies, one saved and loaded
    loaded = sio.loads(
        sio.dumps(original), trusted=sio.get_untrusted_types(data=sio.dumps(original))
    )
    epochs = original.n_iter_
    target = Y if not isinstance(data, list) else YT
    for copy_ in (original, loaded):
        copy_.set_params(warm_start=True, max_epochs=1).fit(data, target)
        assert copy_.n_iter_ == epochs + 1
    # the optimiser's moments and schedule were saved too: training continues identically
    np.testing.assert_array_equal(outputs(loaded, data), outputs(original, data))


_LOAD_ON_CPU = """
import sys, numpy as np, skops.io as sio, torch
assert not torch.cuda.is_available()
path, data_path = sys.argv[1], sys.argv[2]
model = sio.load(path, trusted=sio.get_untrusted_types(file=path))
data = np.load(data_path, allow_pickle=False)
np.save(data_path.replace(".npy", "_out.npy"), model.predict_proba(data))
print(model.net_.device)
"""


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name", ["SphericalClassifier", "NDMClassifier"])
def test_a_model_trained_on_cuda_loads_and_predicts_on_a_cpu_machine(name, tmp_path):
    import os
    import subprocess
    import sys

    make, data, target = CASES[name]
    model = make().set_params(device="cuda").fit(data, target)
    expected = model.predict_proba(data)
    path, data_path = tmp_path / "model.skops", tmp_path / "x.npy"
    sio.dump(model, path)
    np.save(data_path, data)
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    run = subprocess.run(
        [sys.executable, "-c", _LOAD_ON_CPU, str(path), str(data_path)],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "cpu"
    got = np.load(str(data_path).replace(".npy", "_out.npy"))
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------ sphereml.save / sphereml.load
def test_save_and_load_round_trip(fitted, tmp_path):
    import sphereml

    model, data = fitted
    sphereml.save(model, tmp_path / "model.skops")
    loaded = sphereml.load(tmp_path / "model.skops")
    np.testing.assert_array_equal(outputs(loaded, data), outputs(model, data))
    assert sphereml.persistence.untrusted_types(tmp_path / "model.skops") == []


def _json_node(value):
    import json

    return {
        "__class__": type(value).__name__,
        "__module__": "builtins",
        "__loader__": "JsonNode",
        "content": json.dumps(value),
        "is_json": True,
        "__id__": id(value),
    }


def _tampered(blob: bytes, module: str, name: str, args: tuple) -> bytes:
    """``blob`` with its first hyper-parameter replaced by a call ``module.name(*args)``."""
    import json

    with zipfile.ZipFile(io.BytesIO(blob)) as archive:
        contents = {n: archive.read(n) for n in archive.namelist()}
    schema = json.loads(contents["schema.json"])
    params = schema["content"]["content"]
    first = next(iter(params))
    arg_nodes = [
        {"__class__": "list", "__module__": "builtins", "__loader__": "ListNode",
         "content": [_json_node(v) for v in a]} if isinstance(a, list) else _json_node(a)
        for a in args
    ]  # fmt: skip
    params[first] = {
        "__class__": name,
        "__module__": module,
        "__loader__": "ConstructorFromReduceNode",
        "content": {
            "__class__": "tuple",
            "__module__": "builtins",
            "__loader__": "TupleNode",
            "content": arg_nodes,
        },
    }
    contents["schema.json"] = json.dumps(schema).encode()
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for n, data in contents.items():
            archive.writestr(n, data)
    return out.getvalue()


ATTACKS = {
    "os.system": ("os", "system", lambda m: (f"touch {m}",)),
    "builtins.eval": ("builtins", "eval", lambda m: (f"open({str(m)!r}, 'w').write('x')",)),
    "builtins.exec": ("builtins", "exec", lambda m: (f"open({str(m)!r}, 'w').write('x')",)),
    "subprocess.Popen": ("subprocess", "Popen", lambda m: (["touch", str(m)],)),
}


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_a_tampered_schema_is_refused_by_name_and_runs_nothing(attack, tmp_path):
    import sphereml

    module, name, args = ATTACKS[attack]
    model = VMFMixture(2, random_state=0).fit(X)
    marker = tmp_path / "pwned"
    path = tmp_path / "model.skops"
    path.write_bytes(_tampered(sio.dumps(model), module, name, args(marker)))
    with pytest.raises(sphereml.persistence.UntrustedTypesError, match=attack.replace(".", r"\.")):
        sphereml.load(path)
    assert not marker.exists()
    if attack == "builtins.eval":
        # the control: trusting whatever the file lists (the recipe sphereml.load replaces)
        # does run the payload, so the refusal above is what protects
        sio.load(path, trusted=sio.get_untrusted_types(file=path))
        assert marker.exists()


def test_save_refuses_foreign_objects_and_stores_torch_devices_as_plain_data(tmp_path):
    import sphereml

    model = SphericalClassifier((4,), max_epochs=2, n_estimators=1, device=torch.device("cpu"))
    model.fit(X, Y)
    sphereml.save(model, tmp_path / "model.skops")  # no torch type in the file
    loaded = sphereml.load(tmp_path / "model.skops")
    assert loaded.device == torch.device("cpu") and isinstance(loaded.device, torch.device)
    clone = VMFMixture(2, init=np.eye(3)[:2], random_state=0)
    clone.foreign = _Payload(tmp_path / "never")  # a user-attached object of a foreign type
    with pytest.raises(sphereml.persistence.UntrustedTypesError, match="_Payload"):
        sphereml.save(clone, tmp_path / "other.skops")
    assert not (tmp_path / "other.skops").exists()


def _state_of(model):
    import copy

    return copy.deepcopy(model.__getstate__())  # edits must not reach the model


@pytest.mark.parametrize(
    "make, data, target, edit, words",
    [
        (  # a file asking for a 2e9-wide layer: 32 GB that the weights do not have
            lambda: SphericalClassifier((4,), max_epochs=1, n_estimators=1, random_state=0),
            X, Y, lambda s: s.update(hidden_dims_=(2_000_000_000,)), "build no network",
        ),
        (  # 640 GB of embedding for a 10-word vocabulary
            lambda: NGPTTextClassifier(**SMALL_TEXT),
            TEXTS, YT, lambda s: setattr(s["tokenizer_"], "vocab_size_", 10**10),
            r"shape \(\d+, 8\), but the stored hyper-parameters make it \(10000000000, 8\)",
        ),
        (  # a trillion members, weights for one
            lambda: NDMClassifier(max_epochs=1, n_estimators=1, random_state=0),
            X, Y, lambda s: s.update(n_estimators_=10**12), "n_estimators_=1000000000000 networks",
        ),
        (  # the weights left out: used to load as fitted and fail at predict
            lambda: SphericalClassifier((4,), max_epochs=1, n_estimators=1, random_state=0),
            X, Y, lambda s: s.pop("_module_state"), "incomplete",
        ),
        (  # one weight of the wrong shape
            lambda: NDMClassifier(max_epochs=1, n_estimators=1, random_state=0),
            X, Y,
            lambda s: s["_module_state"].update(
                {k: v[:1] for k, v in list(s["_module_state"].items())[:1]}
            ),
            "has shape",
        ),
    ],
)  # fmt: skip
def test_a_corrupt_file_is_refused_before_allocating(make, data, target, edit, words, tmp_path):
    import sphereml

    model = make().fit(data, target)
    state = _state_of(model)
    edit(state)
    fresh = type(model).__new__(type(model))
    with pytest.raises(ValueError, match=words) as error:
        fresh.__setstate__(state)
    assert "corrupt or from an incompatible version" in str(error.value)
    # through a file too: the same refusal, before the network is built
    sphereml.save(model, tmp_path / "model.skops")
    loaded = sphereml.load(tmp_path / "model.skops")
    np.testing.assert_array_equal(loaded.predict(data), model.predict(data))
