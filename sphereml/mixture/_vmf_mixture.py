"""Mixture of von Mises–Fisher distributions fitted by EM (Banerjee et al. 2005).

Longer than the package's 600-line guide for one reason: it is one estimator class whose
numpydoc docstring (every parameter, attribute and the online and device options) is a
quarter of the file; its EM maths is in :mod:`._em`, its passes over the data in the
backends."""

from __future__ import annotations

import warnings
from functools import partial
from numbers import Integral, Real

import numpy as np
from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    DensityMixin,
    TransformerMixin,
)
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from .._sphere import vmf
from .._sphere._ops import l2_normalize
from ..utils._concurrency import one_fit_at_a_time
from ..utils._sklearn_compat import Interval, StrOptions, _fit_context
from ._backend import (
    NumpyBackend,
    merge_top_rows,
    worst_served_rows,
)
from ._dask import is_dask_array, map_method, maps_dask_chunks, validate_dask_data
from ._device_em import DeviceRunner, HostRunner, supports_device_loop
from ._dispatch import make_backend
from ._em import (
    log_offsets,
    nearest_statistics,
    online_step_size,
    parameters_from_statistics,
    posterior_statistics,
    statistics_from_parameters,
    worst_explained_rows,
)
from ._validation import (
    check_n_samples,
    drop_zero_rows,
    initial_means,
    row_norms,
    validate_online_batch,
    validate_sample_weight,
    validate_unit_data,
)


class VMFMixture(ClassNamePrefixFeaturesOutMixin, TransformerMixin, DensityMixin, BaseEstimator):
    """Mixture of von Mises–Fisher distributions on the unit sphere, fitted by EM.

    Each component k has a mean direction μ_k (unit vector), a concentration κ_k >= 0 and
    a weight π_k; the density is p(x) = Σ_k π_k C_d(κ_k) exp(κ_k μ_kᵀx) on S^(d-1).
    Inputs are L2-normalised on entry, so the model suits any data whose direction carries
    the signal: tf-idf vectors (sparse CSR is never densified), embeddings, positions on
    the globe.

    Parameters
    ----------
    n_components : int, default=1
        Number of mixture components.
    posterior_type : {"soft", "hard", "stochastic"}, default="soft"
        E-step. ``"soft"`` is exact EM (soft-moVMF); ``"hard"`` assigns each point to its
        most probable component (hard-moVMF, a generalised spherical k-means that also
        learns κ and weights); ``"stochastic"`` draws each point's component from its
        posterior (stochastic EM).
    kappa : "free", "tied" or float, default="free"
        ``"free"``: one κ per component; ``"tied"``: one κ shared by all components
        (its MLE solves A_d(κ) = Σ_k ‖r_k‖ / n); a float fixes every κ to that value.
    kappa_estimator : {"newton", "sra", "song", "banerjee"}, default="newton"
        How the M-step solves A_d(κ) = r̄; see :func:`sphereml.vmf.estimate_kappa`.
    init : {"k-means++", "random", "spherical-k-means"} or array of shape \
            (n_components, n_features), default="k-means++"
        Initial mean directions. ``"k-means++"`` seeds on the unit rows (at most 100,000
        rows, subsampled beyond); ``"random"`` picks distinct rows; ``"spherical-k-means"``
        runs :class:`SphericalKMeans` first. The first M-step then sets κ and weights from
        the nearest-mean assignment.
    n_init : int, default=1
        Number of initialisations; the one with the highest log-likelihood is kept.
    max_iter : int, default=100
        Maximum number of EM iterations per initialisation.
    tol : float, default=1e-5
        Convergence threshold on the relative change of the per-sample log-likelihood,
        measured against its gain over the uniform distribution:
        ``|ℓ_t - ℓ_(t-1)| <= tol · |ℓ_t - log C_d(0)|``. The gain does not depend on the
        (arbitrary, d-dependent) offset of the log-density, which a plain relative change
        would divide by.
    min_weight : float, default=1e-4
        A component whose weight falls below this, or whose resultant vanishes, is
        re-seeded at the sample with the lowest log-likelihood under the current model
        and the data are re-partitioned by nearest mean for that M-step (as k-means
        relocates empty clusters). This keeps ``n_components`` components (shapes stay
        fixed, as in sklearn) instead of dropping the component. A component that stays
        empty even then (duplicated rows) is kept at weight ``min_weight``.
    normalize : bool, default=True
        L2-normalise rows on entry. With False, rows must already have unit norm (checked).
    zero_rows : {"uniform", "raise"}, default="uniform"
        What a row of zeros means (no direction; e.g. the tf-idf row of an empty
        document): ``"uniform"`` every direction alike, so ``fit`` and ``partial_fit``
        leave it out (a UserWarning counts such rows) and at prediction it gets the
        posterior π (the mixture weights), the log-density of the uniform distribution
        on the sphere, and cosine distance 1 to every mean in ``transform``; ``"raise"``
        a ValueError naming the rows, in fits and at prediction.
    device : None, str or torch.device, default=None
        None runs on NumPy/SciPy (CPU, dense or CSR). A torch device (``"cpu"``,
        ``"cuda"``, ``"cuda:1"``, ``"mps"``, ``"auto"`` for CUDA when available, or a
        ``torch.device``; see :func:`sphereml.utils.resolve_device`) runs the E and M
        steps as torch operations on that device in the data's dtype (float32 data stay
        float32); dense input only. Anything else raises a ValueError or TypeError.
        Soft and hard EM then run on the device end to end — E-step, M-step and the κ
        Newton iteration — with one host read per iteration (the convergence test); on
        CUDA each iteration is one CUDA-graph replay.
    compile : bool, default=False
        With a torch ``device``: compile the posterior pass over the n×k matrix (log-sum-exp
        and responsibilities) and the M-step with ``torch.compile``, fusing them into a few
        kernels. Pays off on large GPU fits only: the first fit of each shape pays the
        compilation, which takes minutes on a small CPU (far longer than a small fit) and
        is cached by torch on disk for later processes. Ignored without ``device``.
    matmul_precision : {"tf32x3", "highest", "high"}, default="tf32x3"
        Precision of the two data-sized matrix products with a CUDA ``device`` and
        float32 data (float64 data and the CPU are unaffected: plain float64/float32).

        - ``"tf32x3"``: float32 accuracy on tensor cores. Where Triton is installed (it
          ships with CUDA builds of torch) and k ≤ 256, the E-step is one fused kernel
          (product, log-sum-exp, responsibilities and counts; the n×k log-probabilities
          never reach memory) whose product splits each float32 operand into two TF32
          parts and sums three tensor-core products (the 3×TF32 scheme): errors below
          cuBLAS float32's, and faster than ``"highest"``. Without Triton: as
          ``"highest"``.
        - ``"highest"``: IEEE float32 products (cuBLAS SGEMM) and a separate posterior
          pass.
        - ``"high"``: TF32 products (10-bit mantissa inputs, float32 accumulation):
          the fastest, with the mean log-likelihood moved by about 1e-6 of its value.

        Measurements: the docs' decisions page, "GPU kernels".
    random_state : int, RandomState instance or None, default=None
    warm_start : bool, default=False
        Start from the previous fit's parameters (``n_init`` is then 1).
    verbose : int, default=0
        Print the log-likelihood every ``verbose`` iterations (1 = every iteration).
    learning_decay : float in (0.5, 1], default=0.7
        For :meth:`partial_fit`: the online EM step for the t-th batch is
        ``ρ_t = max(1 / t, (t + learning_offset) ** -learning_decay)`` (batches counted by
        their sample weight). While ``1 / t`` is the larger, the running statistics are
        the plain average of all batches seen; afterwards older batches are forgotten at
        the rate of Cappé & Moulines (2009), whose steps sum to infinity while their
        squares converge for a decay in (0.5, 1]. A smaller decay forgets faster (follows
        drifting data); 1 never forgets.
    learning_offset : float >= 0, default=10.0
        For :meth:`partial_fit`: larger values keep the plain average (every batch
        counting alike) for more batches before forgetting begins.

    Attributes
    ----------
    means_ : ndarray of shape (n_components, n_features)
        Unit mean directions μ_k.
    kappas_ : ndarray of shape (n_components,)
        Concentrations κ_k (equal entries when ``kappa`` is "tied" or a float).
    weights_ : ndarray of shape (n_components,)
        Mixing weights π_k, summing to 1.
    converged_ : bool
    n_iter_ : int
        EM iterations of the best initialisation.
    lower_bound_ : float
        Per-sample (weighted mean) log-likelihood of the best fit; for
        ``posterior_type="hard"`` the classification log-likelihood Σ max_k log(π_k f_k)
        that hard EM increases.
    n_features_in_ : int
    feature_names_in_ : ndarray of str, only when X has string feature names
    n_steps_ : int
        Batches seen by :meth:`partial_fit` since the model was seeded or last fitted.

    See Also
    --------
    SphericalKMeans : hard assignments with no κ or weights.
    sklearn.mixture.GaussianMixture : the Euclidean counterpart this API follows.

    References
    ----------
    Banerjee, Dhillon, Ghosh & Sra (2005). Clustering on the unit hypersphere using von
    Mises-Fisher distributions. JMLR 6.

    Cappé & Moulines (2009). On-line expectation-maximization algorithm for latent data
    models. JRSS B 71(3).

    Examples
    --------
    >>> from sphereml import VMFMixture
    >>> from sphereml.datasets import make_vmf_blobs
    >>> X, y = make_vmf_blobs(n_samples=600, n_features=5, centers=3, kappa=50, random_state=0)
    >>> model = VMFMixture(n_components=3, random_state=0).fit(X)
    >>> model.means_.shape, model.kappas_.shape
    ((3, 5), (3,))
    """

    weights_: np.ndarray
    means_: np.ndarray
    kappas_: np.ndarray
    _online_statistics: tuple[np.ndarray, np.ndarray]

    _parameter_constraints: dict = {
        "n_components": [Interval(Integral, 1, None, closed="left")],
        "posterior_type": [StrOptions({"soft", "hard", "stochastic"})],
        "kappa": [StrOptions({"free", "tied"}), Interval(Real, 0, None, closed="left")],
        "kappa_estimator": [StrOptions({"newton", "sra", "song", "banerjee"})],
        "init": [StrOptions({"k-means++", "random", "spherical-k-means"}), "array-like"],
        "n_init": [Interval(Integral, 1, None, closed="left")],
        "max_iter": [Interval(Integral, 0, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "min_weight": [Interval(Real, 0, 1, closed="left")],
        "normalize": ["boolean"],
        "zero_rows": [StrOptions({"uniform", "raise"})],
        "device": [None, str, object],  # checked by resolve_device in fit
        "compile": ["boolean"],
        "matmul_precision": [StrOptions({"tf32x3", "highest", "high"})],
        "random_state": ["random_state"],
        "warm_start": ["boolean"],
        "verbose": ["verbose"],
        "learning_decay": [Interval(Real, 0.5, 1, closed="right")],
        "learning_offset": [Interval(Real, 0, None, closed="left")],
    }

    def __init__(
        self,
        n_components: int = 1,
        *,
        posterior_type: str = "soft",
        kappa="free",
        kappa_estimator: str = "newton",
        init="k-means++",
        n_init: int = 1,
        max_iter: int = 100,
        tol: float = 1e-5,
        min_weight: float = 1e-4,
        normalize: bool = True,
        zero_rows: str = "uniform",
        device=None,
        compile: bool = False,
        matmul_precision: str = "tf32x3",
        random_state=None,
        warm_start: bool = False,
        verbose: int = 0,
        learning_decay: float = 0.7,
        learning_offset: float = 10.0,
    ):
        self.n_components = n_components
        self.posterior_type = posterior_type
        self.kappa = kappa
        self.kappa_estimator = kappa_estimator
        self.init = init
        self.n_init = n_init
        self.max_iter = max_iter
        self.tol = tol
        self.min_weight = min_weight
        self.normalize = normalize
        self.zero_rows = zero_rows
        self.device = device
        self.compile = compile
        self.matmul_precision = matmul_precision
        self.random_state = random_state
        self.warm_start = warm_start
        self.verbose = verbose
        self.learning_decay = learning_decay
        self.learning_offset = learning_offset

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags

    # ------------------------------------------------------------------ fitting
    @one_fit_at_a_time
    def fit(self, X, y=None, sample_weight=None):
        """Estimate the mixture parameters by EM.

        Parameters
        ----------
        X : {array-like, sparse matrix} or dask array of shape (n_samples, n_features)
            Rows are directions (normalised on entry unless ``normalize=False``). With a
            dask array (dense, SciPy-sparse or pydata-sparse chunks) every EM pass runs
            per chunk on the dask workers and only the sufficient statistics, k·(d + 2)
            numbers per chunk, come back to the client; the fit equals the in-memory fit
            up to round-off. ``predict`` and the other prediction methods then also take
            dask arrays and return lazy ones.
        y : ignored
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weights; a weight of 2 counts a row twice.

        Returns
        -------
        self
        """
        self.fit_predict(X, y, sample_weight=sample_weight)
        return self

    @one_fit_at_a_time
    @_fit_context(prefer_skip_nested_validation=True)
    def fit_predict(self, X, y=None, sample_weight=None):
        """Fit the model and return the MAP component of each training sample.

        The labels come from a final E-step with the fitted parameters, so they equal
        ``fit(X).predict(X)``.

        Returns
        -------
        labels : ndarray of shape (n_samples,)
            A dask array (computed lazily) when X is one.
        """
        first_fit = not (self.warm_start and hasattr(self, "means_"))
        if not first_fit and self.means_.shape[0] != self.n_components:
            raise ValueError(
                f"warm_start=True continues the fitted model of {self.means_.shape[0]} "
                f"components, but n_components is now {self.n_components}; set "
                "warm_start=False to fit a new model"
            )
        X, sample_weight = self._validate_fit_data(X, sample_weight, reset=first_fit)
        X_fit = X
        if not is_dask_array(X):
            X_fit, sample_weight = drop_zero_rows(X, sample_weight)
        check_n_samples(X_fit, self.n_components)
        random_state = check_random_state(self.random_state)
        backend = make_backend(X_fit, sample_weight, self.device, normalize=self.normalize)
        n_features = X.shape[1]
        uniform_ll = float(vmf.log_normalizer(0.0, n_features))

        runner: DeviceRunner | HostRunner
        if supports_device_loop(self, backend):
            runner = DeviceRunner(
                self, backend, compile=self.compile, matmul_precision=self.matmul_precision
            )
        else:
            runner = HostRunner(self, backend, random_state)

        best = None
        n_init = self.n_init if first_fit else 1
        for init in range(n_init):
            if first_fit:
                params = self._initialize(backend, random_state)
            else:
                params = (self.weights_, self.means_, self.kappas_)
            state = runner.load(params)
            ll = -np.inf
            converged = False
            n_iter = 0
            for n_iter in range(1, self.max_iter + 1):
                prev = ll
                state, ll = runner.iterate(state)
                if self.verbose and n_iter % self.verbose == 0:
                    print(f"  init {init} iteration {n_iter}: log-likelihood {ll:.6f}")
                if abs(ll - prev) <= self.tol * max(abs(ll - uniform_ll), 1e-300):
                    converged = True
                    break
            # Evaluate the final parameters (the loop's ll belongs to the previous ones).
            ll = runner.log_likelihood(state)
            params = runner.unload(state)
            if self.verbose:
                print(
                    f"Initialization {init} {'converged' if converged else 'stopped'} "
                    f"after {n_iter} iterations: log-likelihood {ll:.6f}"
                )
            if best is None or ll > best[0]:
                best = (ll, params, n_iter, converged)

        assert best is not None  # n_init >= 1
        ll, (weights, means, kappas), n_iter, converged = best
        if not converged and self.max_iter > 0:
            warnings.warn(
                f"Best of {n_init} initialisation(s) did not converge within max_iter="
                f"{self.max_iter} iterations; increase max_iter or tol.",
                ConvergenceWarning,
                stacklevel=2,
            )
        self.weights_, self.means_, self.kappas_ = weights, means, kappas
        self.converged_ = converged
        self.n_iter_ = n_iter
        self.lower_bound_ = ll
        # partial_fit continues from this fit: its running statistics are the fitted
        # model's, weighing as much as the data it was fitted on
        self._online_statistics = statistics_from_parameters(weights, means, kappas)
        self._online_weight = float(sample_weight.sum())
        self.__dict__.pop("_online_rng", None)
        self.n_steps_ = 0
        if is_dask_array(X):
            return map_method(self, "predict", X, None, np.intp)
        return self._estimate_weighted_log_prob(X).argmax(axis=1)

    def _validate_fit_data(self, X, sample_weight, *, reset: bool):
        """Unit rows (or a dask array checked lazily) and validated weights."""
        if is_dask_array(X):
            X = validate_dask_data(self, X, reset=reset)
            if is_dask_array(sample_weight):
                sample_weight = sample_weight.compute()
            # n floats stay on the client (the matrix, n·d, stays on the workers)
            return X, validate_sample_weight(sample_weight, np.empty((X.shape[0], 0)))
        X = validate_unit_data(
            self, X, reset=reset, normalize=self.normalize, zero_rows=self.zero_rows
        )
        return X, validate_sample_weight(sample_weight, X)

    @one_fit_at_a_time
    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y=None, sample_weight=None):
        """One step of online (stepwise) EM on a batch, for data that do not fit in memory.

        The model keeps running averages of the per-sample sufficient statistics — the
        weighted responsibilities n_k / N and resultants r_k / N — and moves them towards
        each batch's by a step ρ (Cappé & Moulines 2009, see ``learning_decay``); the
        parameters are the M-step of those averages. On an unfitted model the first call
        seeds the means from its batch (``init``; the batch needs at least
        ``n_components`` rows). After :meth:`fit` it continues from the fitted model,
        whose statistics weigh as much as the data it was fitted on, as scikit-learn's
        ``MiniBatchKMeans.partial_fit`` continues from fitted centres. Batches may be
        dense or CSR, of any size, with the number of features of the first.
        ``n_components`` cannot change between calls (call :meth:`fit`, which starts
        over). Several passes bring the fit close to batch EM from a seeding on one
        batch; on data with many local optima (tf-idf text) batch EM with ``n_init``
        restarts finds better ones. :class:`dask_ml.wrappers.Incremental` drives this
        method over the chunks of a dask array.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
        y : ignored
        sample_weight : array-like of shape (n_samples,), default=None

        Returns
        -------
        self
        """
        first = not hasattr(self, "means_")
        n_fitted = None if first else self.means_.shape[0]
        X, sample_weight = validate_online_batch(self, X, sample_weight, "n_components", n_fitted)
        if X is None:
            return self
        backend = make_backend(X, sample_weight, self.device)
        if first:
            check_n_samples(X, self.n_components)
            self._online_rng = check_random_state(self.random_state)
            params = self._initialize(backend, self._online_rng)
            self._online_weight = 0.0
            self.n_steps_ = 0
        else:
            params = (self.weights_, self.means_, self.kappas_)
            if not hasattr(self, "_online_statistics"):  # e.g. a model set up by hand
                self._online_statistics = statistics_from_parameters(*params)
                self._online_weight = 0.0
            if not hasattr(self, "_online_rng"):
                self._online_rng = check_random_state(self.random_state)
        counts, resultants, ll = self._e_step(backend, params, self._online_rng)
        total = backend.total_weight()
        batch = (counts / total, resultants / total)
        rho = online_step_size(
            self._online_weight, total, self.learning_offset, self.learning_decay
        )
        if rho >= 1.0:
            statistics = batch
        else:
            old = self._online_statistics
            statistics = ((1 - rho) * old[0] + rho * batch[0], (1 - rho) * old[1] + rho * batch[1])
        weights, means, kappas, collapsed = self._parameters_from_statistics(
            statistics[0], statistics[1], params[1]
        )
        if collapsed.any() and not collapsed.all():
            # a component without mass keeps its direction and lives on at the weight floor
            kappas[collapsed] = np.median(kappas[~collapsed])
            weights[collapsed] = max(self.min_weight, 1.0 / X.shape[0])
            weights = weights / weights.sum()
        self._online_statistics = statistics
        self._online_weight += total
        self.weights_, self.means_, self.kappas_ = weights, means, kappas
        self.n_steps_ += 1
        self.lower_bound_ = ll
        return self

    @property
    def _n_features_out(self) -> int:
        """Output features of ``transform`` and ``predict_proba``: the fitted components."""
        return self.means_.shape[0]

    def _initialize(self, backend, random_state):
        if isinstance(self.init, str) and self.init == "spherical-k-means":
            from ._spherical_kmeans import SphericalKMeans

            km = SphericalKMeans(
                n_clusters=self.n_components, n_init=1, normalize=False, random_state=random_state
            )
            means = km._fit_backend(backend, random_state).cluster_centers_
        else:
            means = initial_means(backend, self.n_components, self.init, random_state)
        # Before any E-step the nearest-mean partition gives the first M-step, and a
        # component left empty is re-seeded where the means serve the data worst.
        counts, resultants = backend.map_reduce(nearest_statistics, means)
        return self._m_step(backend, counts, resultants, (None, means, None))

    def _e_step(self, backend, params, random_state):
        """One pass over the data under ``params``: counts n_k, resultants r_k (of the
        posterior responsibilities) and the weighted mean log-likelihood per sample."""
        seed = random_state.randint(2**31) if self.posterior_type == "stochastic" else None
        offsets = log_offsets(params[0], params[2], params[1].shape[1])
        # Shift in float64 so float32 device arithmetic only sees O(κ) magnitudes.
        shift = float(offsets.max())
        counts, resultants, ll_sum = backend.map_reduce(
            posterior_statistics, self.posterior_type, params, offsets - shift, seed
        )
        return counts, resultants, ll_sum / backend.total_weight() + shift

    def _m_step(self, backend, counts, resultants, params):
        """Weights, mean directions and concentrations from the statistics of ``params``.

        A component that collapsed (weight below ``min_weight`` or a vanishing resultant)
        is moved to the sample worst explained by ``params`` (lowest log-likelihood; before
        the first E-step, lowest cosine to its nearest mean), as k-means relocates empty
        clusters, and the data are re-partitioned by nearest mean direction for this one
        M-step, so the moved component starts with the points around its new seed.
        """
        old_means = params[1]
        weights, means, kappas, collapsed = self._parameters_from_statistics(
            counts, resultants, old_means
        )
        if not collapsed.any() or collapsed.all():
            return weights, means, kappas
        n_moved = int(collapsed.sum())
        combine = partial(merge_top_rows, n=n_moved)
        if params[0] is None:
            worst = backend.map_reduce(worst_served_rows, old_means, n_moved, combine=combine)
        else:
            offsets = log_offsets(params[0], params[2], old_means.shape[1])
            worst = backend.map_reduce(
                worst_explained_rows,
                "hard" if self.posterior_type == "hard" else "soft",
                params,
                offsets,
                n_moved,
                combine=combine,
            )
        means[collapsed] = l2_normalize(backend.take_rows(worst))
        counts, resultants = backend.map_reduce(nearest_statistics, means)
        weights, means, kappas, collapsed = self._parameters_from_statistics(
            counts, resultants, means
        )
        if collapsed.any() and not collapsed.all():
            # Still empty (e.g. duplicated rows): keep it alive at the weight floor.
            kappas[collapsed] = np.median(kappas[~collapsed])
            weights[collapsed] = max(self.min_weight, 1.0 / backend.n_samples)
            weights = weights / weights.sum()
        return weights, means, kappas

    def _parameters_from_statistics(self, counts, resultants, old_means):
        """Closed-form M-step from n_k and r_k; also flags collapsed components."""
        n_features = resultants.shape[1]

        def estimate(rbar):
            return vmf.estimate_kappa(rbar, n_features, method=self.kappa_estimator), None

        weights, means, kappas, collapsed, _ = parameters_from_statistics(
            counts, resultants, old_means, kappa=self.kappa, estimate_kappa=estimate,
            min_weight=self.min_weight,
        )  # fmt: skip
        return weights, means, kappas, collapsed

    # --------------------------------------------------------------- inference
    def _estimate_weighted_log_prob(self, X):
        """log π_k + log f_k(x_i) for unit rows X, shape (n_samples, n_components)."""
        backend = NumpyBackend(X, sample_weight=np.ones(X.shape[0]))
        n_features = self.means_.shape[1]
        offsets = log_offsets(self.weights_, self.kappas_, n_features)
        log_prob = backend.log_prob(backend.cosines(self.means_), self.kappas_, offsets)
        zero = row_norms(X) == 0  # only with zero_rows="uniform": no direction, so the
        if zero.any():  # posterior is π and the density the sphere's uniform one
            log_prob[zero] = log_offsets(self.weights_, np.zeros_like(self.kappas_), n_features)
        return log_prob

    def _validate_predict_input(self, X):
        check_is_fitted(self)
        return validate_unit_data(
            self, X, reset=False, normalize=self.normalize, zero_rows=self.zero_rows
        )

    @maps_dask_chunks(None, np.float64)
    def score_samples(self, X):
        """Log-density log p(x) of each sample under the mixture (w.r.t. the surface measure).

        Returns
        -------
        log_prob : ndarray of shape (n_samples,)
        """
        return self._score_samples_unit(self._validate_predict_input(X))

    def score(self, X, y=None, sample_weight=None):
        """Weighted mean log-likelihood per sample (computed, also for a dask array)."""
        log_prob = self.score_samples(X)
        if is_dask_array(log_prob):
            log_prob = log_prob.compute()
        weights = validate_sample_weight(sample_weight, log_prob[:, None])
        return float(np.average(log_prob, weights=weights))

    def _score_samples_unit(self, X) -> np.ndarray:
        from scipy.special import logsumexp

        return logsumexp(self._estimate_weighted_log_prob(X), axis=1)

    @maps_dask_chunks(None, np.intp)
    def predict(self, X):
        """MAP component argmax_k π_k f_k(x), using the weights and concentrations.

        Returns
        -------
        labels : ndarray of shape (n_samples,)
        """
        return self._estimate_weighted_log_prob(self._validate_predict_input(X)).argmax(axis=1)

    @maps_dask_chunks("n_components", np.float64)
    def predict_proba(self, X):
        """Posterior probability of each component, shape (n_samples, n_components)."""
        from scipy.special import softmax

        return softmax(self._estimate_weighted_log_prob(self._validate_predict_input(X)), axis=1)

    @maps_dask_chunks("n_components", np.float64)
    def transform(self, X):
        """Cosine distance 1 - μ_kᵀx to every mean direction, shape (n_samples, n_components)."""
        X = self._validate_predict_input(X)
        return 1.0 - np.asarray(X @ self.means_.T.astype(X.dtype, copy=False), dtype=np.float64)

    def sample(self, n_samples: int = 1):
        """Draw samples from the fitted mixture.

        Returns
        -------
        X : ndarray of shape (n_samples, n_features), unit rows
        y : ndarray of shape (n_samples,), component labels
        """
        check_is_fitted(self)
        if n_samples < 1:
            raise ValueError(f"n_samples must be >= 1; got {n_samples}.")
        rng = check_random_state(self.random_state)
        counts = rng.multinomial(n_samples, self.weights_)
        X = np.vstack(
            [
                vmf.sample_vmf(mu, kappa, int(c), random_state=rng)
                for mu, kappa, c in zip(self.means_, self.kappas_, counts, strict=True)
            ]
        )
        y = np.repeat(np.arange(self.n_components), counts)
        return X, y

    def _n_parameters(self) -> int:
        n_features = self.means_.shape[1]
        n_kappa = (
            {"free": self.n_components, "tied": 1}.get(self.kappa, 0)
            if isinstance(self.kappa, str)
            else 0
        )
        # A unit mean direction has d - 1 degrees of freedom; weights sum to one.
        return self.n_components * (n_features - 1) + n_kappa + self.n_components - 1

    def bic(self, X) -> float:
        """Bayesian information criterion, -2 log L + p log n (lower is better)."""
        log_prob = self.score_samples(X)
        return -2.0 * float(log_prob.sum()) + self._n_parameters() * np.log(len(log_prob))

    def aic(self, X) -> float:
        """Akaike information criterion, -2 log L + 2p (lower is better)."""
        return -2.0 * float(self.score_samples(X).sum()) + 2.0 * self._n_parameters()
