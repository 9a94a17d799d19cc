"""EM iterations that stay on a torch device: E-step, M-step and κ estimation.

The host loop in :class:`~sphereml.mixture.VMFMixture` asks a *runner* for one iteration
at a time. :class:`HostRunner` is the reference (the k-sized parameters live on the host
as float64 NumPy, the data passes run through a backend). :class:`DeviceRunner` keeps the
parameters on the torch device as float64 tensors and runs the whole iteration there:

1. ``lp = X (κ μ)ᵀ + (log π + log C_d(κ))`` — one GEMM with the bias in its epilogue gives
   log π_k f_k(x_i) (shifted by the largest offset, so float32 sees O(κ) magnitudes);
2. the posterior pass over the n×k matrix: responsibilities and log Σ_k exp(lp) per row,
   eagerly as log-softmax and exp (the log-sum-exp is read off one column), or with
   ``compile=True`` one fused kernel;
3. ``R = Γᵀ X`` (one GEMM) and the counts n_k = Σ_i w_i γ_ik;
4. the M-step and the safeguarded Newton iteration for κ, vectorised over components
   (:mod:`sphereml._sphere._vmf_torch`).

On CUDA the iteration is captured once in a CUDA graph and replayed. The host reads one
small tensor per iteration (the log-likelihood and a flag) for the convergence test. The
flag is raised on the rare events whose handling needs the host — a component collapsed
(re-seeding picks rows by a global search) or a κ Newton iteration still moving after its
fixed number of steps — and that iteration's M-step is then redone by the reference code
from the same statistics, so both runners follow the same path. (The GEMM shapes were
chosen by measurement: docs/decisions.rst, "GPU kernels".)
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager
from typing import Any

import numpy as np

from .._sphere import _vmf_torch as vmf_torch
from ._em import parameters_from_statistics


class HostRunner:
    """Parameters on the host; every pass over the data through the backend's kernels."""

    def __init__(self, estimator, backend, random_state):
        self.estimator = estimator
        self.backend = backend
        self.random_state = random_state

    def load(self, params):
        return params

    def unload(self, state):
        return state

    def iterate(self, state):
        """One EM iteration: (parameters after it, log-likelihood of ``state``)."""
        est = self.estimator
        counts, resultants, ll = est._e_step(self.backend, state, self.random_state)
        return est._m_step(self.backend, counts, resultants, state), ll

    def log_likelihood(self, state) -> float:
        return self.estimator._e_step(self.backend, state, self.random_state)[2]


#: ``matmul_precision`` → torch's float32 matmul precision (the library GEMMs: "tf32x3"
#: exists only in the fused kernel, the other products stay float32).
TORCH_PRECISION = {"highest": "highest", "high": "high", "tf32x3": "highest"}

#: ``matmul_precision`` → Triton's ``input_precision`` in the fused E-step. Only "tf32x3"
#: uses the kernel by default: with "ieee" it is slower than cuBLAS SGEMM plus the posterior
#: pass, and its "tf32" products are less accurate than cuBLAS's TF32.
TRITON_PRECISION = {"highest": "ieee", "high": "tf32", "tf32x3": "tf32x3"}


def fused_e_step_applies(backend, n_components: int, matmul_precision: str) -> bool:
    """Whether the fused Triton E-step serves this fit: ``matmul_precision="tf32x3"``, a
    CUDA device, contiguous float32 rows, at most 256 components, Triton importable."""
    X = backend.X
    if matmul_precision != "tf32x3":
        return False
    if backend.device.type != "cuda" or not X.is_contiguous():
        return False
    if str(X.dtype) != "torch.float32" or n_components > 256:
        return False
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True


def supports_device_loop(estimator, backend) -> bool:
    """Whether ``DeviceRunner`` covers this fit (soft or hard EM on a torch backend)."""
    from ._backend import TorchBackend

    return isinstance(backend, TorchBackend) and estimator.posterior_type in ("soft", "hard")


class DeviceRunner:
    """Parameters on the torch device; an iteration is one graph replay and one host read."""

    def __init__(
        self,
        estimator,
        backend,
        compile: bool = False,
        matmul_precision: str = "tf32x3",
        fused: bool | None = None,
        fused_resultants: bool | None = None,
    ):
        import torch

        self.torch = torch
        self.estimator = estimator
        self.backend = backend
        self.device = backend.device
        self.n_features = backend.X.shape[1]
        weights = backend.sample_weight
        self.uniform_weights = bool((weights == weights[0]).all())
        self.sample_weight = weights
        self.sample_weight64 = weights.double()
        self.total_weight = self.sample_weight64.sum()
        posterior = _soft_posterior if estimator.posterior_type == "soft" else _hard_posterior
        self.posterior = torch.compile(posterior, dynamic=False) if compile else posterior
        self.m_step = torch.compile(self._m_step, dynamic=False) if compile else self._m_step
        self.matmul_precision = matmul_precision
        self.fused = fused_e_step_applies(backend, estimator.n_components, matmul_precision)
        if fused is not None:
            self.fused = fused
        # The second product Γᵀ X as a split-n Triton kernel too: off by default, slower
        # than cuBLAS SGEMM (docs/decisions.rst, "GPU kernels").
        self.fused_resultants = bool(fused_resultants)
        self.graph: Any = None
        self.use_graph = self.device.type == "cuda"

    # ------------------------------------------------------------- state transfer
    def load(self, params):
        weights, means, kappas = params
        torch = self.torch
        return tuple(
            torch.as_tensor(np.asarray(a, dtype=np.float64), device=self.device).clone()
            for a in (weights, means, kappas)
        )

    def unload(self, state):
        return tuple(t.cpu().numpy().copy() for t in state)

    # ------------------------------------------------------------- the iteration
    def _offsets(self, weights, kappas):
        return self.torch.log(weights) + vmf_torch.log_normalizer(kappas, self.n_features)

    def _statistics(self, weights, means, kappas):
        """E-step: n_k, r_k (float64) and the weighted mean log-likelihood of the params."""
        torch = self.torch
        X = self.backend.X
        offsets = self._offsets(weights, kappas)
        shift = offsets.max()
        if self.fused:
            from ._fused_estep import fused_e_step

            resp, log_norm, counts = fused_e_step(
                X,
                (kappas[:, None] * means).to(X.dtype),
                (offsets - shift).to(X.dtype),
                None if self.uniform_weights else self.sample_weight,
                hard=self.estimator.posterior_type == "hard",
                precision=TRITON_PRECISION[self.matmul_precision],
            )
            return self._finish(resp, log_norm, counts, shift)
        # A component of finite offset (weight > 0): the log-sum-exp is read off its column.
        reference = offsets.argmax()[None]
        log_prob = torch.addmm(
            (offsets - shift).to(X.dtype), X, (kappas[:, None] * means).to(X.dtype).T
        )
        resp, log_norm, counts = self.posterior(
            log_prob, reference, None if self.uniform_weights else self.sample_weight
        )
        return self._finish(resp, log_norm, counts, shift)

    def _finish(self, resp, log_norm, counts, shift):
        if self.fused_resultants:
            from ._fused_estep import resultants as triton_resultants

            precision = TRITON_PRECISION[self.matmul_precision]
            resultants = triton_resultants(resp, self.backend.X, precision=precision).double()
        else:
            resultants = (resp.T @ self.backend.X).double()
        ll = (log_norm.double() @ self.sample_weight64) / self.total_weight + shift
        return counts.double(), resultants, ll

    def _m_step(self, counts, resultants, old_means):
        """The host's closed-form M-step (:func:`parameters_from_statistics`) on the device,
        and a flag for what the host must redo (collapse, unfinished κ Newton)."""
        est = self.estimator

        def estimate(rbar):
            return vmf_torch.estimate_kappa(rbar, self.n_features, est.kappa_estimator)

        weights, means, kappas, collapsed, unfinished = parameters_from_statistics(
            counts, resultants, old_means, kappa=est.kappa, estimate_kappa=estimate,
            min_weight=est.min_weight,
        )  # fmt: skip
        host_needed = collapsed.any() & ~collapsed.all()
        if unfinished is not None:
            host_needed = host_needed | unfinished.any()
        return weights, means, kappas, host_needed

    def _step(self, weights, means, kappas):
        counts, resultants, ll = self._statistics(weights, means, kappas)
        new_weights, new_means, new_kappas, host_needed = self.m_step(counts, resultants, means)
        report = self.torch.stack([ll, host_needed.double()])
        return (new_weights, new_means, new_kappas), counts, resultants, report

    def _graphed_step(self, state):
        """The step as a CUDA graph over static buffers: ``state`` is copied in, the graph
        replays, and the outputs are views of the graph's buffers (valid until the next
        replay)."""
        torch = self.torch
        if self.graph is None:
            try:
                self._capture(state)
            except RuntimeError as error:  # torch.AcceleratorError is a RuntimeError
                # A failed capture (e.g. cudaErrorStreamCaptureInvalidated) must not end
                # the fit: the same step runs uncaptured, one launch per kernel.
                self.graph = None
                self.use_graph = False
                warnings.warn(
                    f"capturing the EM iteration as a CUDA graph failed ({error}); "
                    "continuing without the graph (same results, more kernel launches)",
                    UserWarning,
                    stacklevel=4,
                )
                if self.device.type == "cuda":
                    torch.cuda.synchronize(self.device)
                return self._step(*state)
        for buffer, value in zip(self.static_state, state, strict=True):
            if buffer.data_ptr() != value.data_ptr():
                buffer.copy_(value)
        self.graph.replay()
        return self.static_output

    def _capture(self, state) -> None:
        torch = self.torch
        self.static_state = tuple(t.clone() for t in state)
        stream = torch.cuda.Stream(device=self.device)
        stream.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(stream):
            for _ in range(2):  # warm-up (cuBLAS workspaces, compiled kernels)
                self._step(*self.static_state)
        torch.cuda.current_stream(self.device).wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            self.static_output = self._step(*self.static_state)
        self.graph = graph

    def _run_step(self, state):
        # The precision is read when a matmul is issued, i.e. at capture for the graph.
        with float32_matmul_precision(TORCH_PRECISION[self.matmul_precision]):
            if self.use_graph:
                return self._graphed_step(state)
            return self._step(*state)

    def iterate(self, state):
        """One EM iteration: (parameters after it, log-likelihood of ``state``)."""
        new_state, counts, resultants, report = self._run_step(state)
        ll, host_needed = report.tolist()  # the iteration's one host synchronisation
        if host_needed:
            est = self.estimator
            params = self.unload(state)
            new = est._m_step(self.backend, counts.cpu().numpy(), resultants.cpu().numpy(), params)
            return self.load(new), ll
        # Copy out of the graph's buffers before the next replay overwrites them (k-sized).
        return tuple(t.clone() for t in new_state), ll

    def log_likelihood(self, state) -> float:
        _, _, ll = self._statistics(*state)
        return float(ll)


@contextmanager
def float32_matmul_precision(precision: str):
    """``torch.set_float32_matmul_precision`` for the duration of the block (it is
    process-global: "high" lets float32 matmuls use TF32 tensor cores)."""
    import torch

    previous = torch.get_float32_matmul_precision()
    if precision == previous:
        yield
        return
    torch.set_float32_matmul_precision(precision)
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(previous)


def _soft_posterior(log_prob, reference, sample_weight):
    """Responsibilities (softmax over components, times the sample weights), the
    log-sum-exp of each row and the counts Σ_i w_i γ_ik.

    Eagerly this is two passes (log-softmax, exp in place) where softmax plus logsumexp
    take six; the log-sum-exp is ``lp - log_softmax(lp)`` on the column ``reference``.
    """
    import torch

    log_resp = torch.log_softmax(log_prob, dim=1)
    log_norm = (log_prob.index_select(1, reference) - log_resp.index_select(1, reference))[:, 0]
    resp = log_resp.exp_()
    if sample_weight is not None:
        resp = resp.mul_(sample_weight[:, None])
    return resp, log_norm, resp.sum(dim=0)


def _hard_posterior(log_prob, reference, sample_weight):
    """One-hot responsibilities of the most probable component (times the sample weights),
    its log-probability and the counts."""
    import torch

    top, labels = log_prob.max(dim=1)
    # scatter, not one_hot: one_hot checks the labels' range on the host (a synchronisation)
    resp = torch.zeros_like(log_prob).scatter_(1, labels[:, None], 1.0)
    if sample_weight is not None:
        resp = resp.mul_(sample_weight[:, None])
    return resp, top, resp.sum(dim=0)


__all__ = ["DeviceRunner", "HostRunner", "supports_device_loop"]
