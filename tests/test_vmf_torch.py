"""The vMF special functions in torch (``sphereml._sphere._vmf_torch``) against the
NumPy reference and mpmath; run on the CPU, and on CUDA where present."""

import mpmath
import numpy as np
import pytest
import torch

from sphereml import vmf
from sphereml._sphere import _vmf_torch

DIMS = [2, 3, 5, 10, 33, 61, 62, 64, 256, 1000, 100_000]
KAPPAS = np.concatenate([[0.0, 1e-8, 1e-3], np.logspace(-2, 6, 60)])


@pytest.mark.parametrize("d", DIMS)
def test_torch_log_normalizer_and_ratio_match_the_reference(d):
    got = _vmf_torch.log_normalizer(torch.tensor(KAPPAS), d).numpy()
    ref = vmf.log_normalizer(KAPPAS, d)
    np.testing.assert_allclose(got, ref, rtol=5e-14, atol=1e-13)
    positive = KAPPAS[KAPPAS > 0]
    a, _ = _vmf_torch.bessel_ratio_terms(torch.tensor(positive), d)
    np.testing.assert_allclose(a.numpy(), vmf.mean_resultant_length(positive, d), rtol=5e-14)


@pytest.mark.parametrize("d", [2, 5, 64, 256])
def test_torch_bessel_ratio_complement_against_mpmath(d):
    # 1 - A_d(κ) at large κ, where forming it from A would cancel; mpmath at 40 digits.
    mpmath.mp.dps = 40
    kappas = np.array([0.5, 3.0, 50.0, 1e3, 1e5])
    _, complement = _vmf_torch.bessel_ratio_terms(torch.tensor(kappas), d)
    nu = mpmath.mpf(d) / 2 - 1
    exact = [float(1 - mpmath.besseli(nu + 1, k) / mpmath.besseli(nu, k)) for k in kappas]
    # (the NumPy reference reaches ~1e-10 here: it forms 1 - A from A)
    np.testing.assert_allclose(complement.numpy(), exact, rtol=1e-11)


@pytest.mark.parametrize("method", ["newton", "sra", "song", "banerjee"])
@pytest.mark.parametrize("d", [2, 3, 10, 64, 256, 10_000])
def test_torch_estimate_kappa_matches_the_reference(method, d):
    rbar = np.concatenate([[0.0], np.linspace(0.001, 0.99, 60), [0.999, 0.9999]])
    kappa, unfinished = _vmf_torch.estimate_kappa(torch.tensor(rbar), d, method)
    ref = vmf.estimate_kappa(rbar, d, method=method)
    # the two-step methods amplify the reference's own 1e-10 error in 1 - A at small d
    rtol = 1e-9 if method == "newton" else 1e-7
    done = ~unfinished.numpy()
    np.testing.assert_allclose(kappa.numpy()[done], ref[done], rtol=rtol, atol=1e-12)
    # entries still moving after the fixed steps are flagged for the host; only the
    # loosest Amos bounds (d = 2) need more than four steps
    assert done.all() or (d == 2 and done.mean() > 0.9)
