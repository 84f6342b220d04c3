import math

import numpy as np
import pytest
import torch

from dse_callback import rankme
from dse_callback.kernel.rankme import rankme_of_singular_values


def _direct(singular_values: np.ndarray) -> float:
    p = singular_values / singular_values.sum() + 1e-7
    return float(np.exp(-(p * np.log(p)).sum()))


@pytest.mark.parametrize("spectrum", [[3.0, 2.0, 1.0], [1.0, 0.0, 0.0, 0.0], [5.0] * 7, [10.0, 1e-3, 1e-3]])
def test_rankme_matches_direct_formula_on_known_spectra(spectrum):
    # Z = U diag(s) V^T has exactly the singular values s.
    s = np.array(spectrum)
    u, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(20, len(s))))
    v, _ = np.linalg.qr(np.random.default_rng(1).normal(size=(len(s), len(s))))
    z = u @ np.diag(s) @ v.T
    assert rankme(z) == pytest.approx(_direct(s), rel=1e-9)
    assert rankme_of_singular_values(torch.tensor(s)) == pytest.approx(_direct(s), rel=1e-12)


def test_rankme_bounds_full_rank_and_rank_one():
    assert rankme(np.eye(6)) == pytest.approx(6.0, rel=1e-5)
    rank_one = np.outer(np.arange(1.0, 11.0), np.ones(4))
    assert rankme(rank_one) == pytest.approx(1.0, abs=1e-4)
    assert rankme(torch.zeros(5, 3)) == 1.0
    assert 1.0 <= rankme(torch.randn(50, 8, generator=torch.Generator().manual_seed(0))) <= 8.0 + 1e-9


def test_rankme_rejects_bad_shape():
    with pytest.raises(ValueError, match="z must have shape"):
        rankme(torch.ones(5))
    assert math.isfinite(rankme(torch.randn(4, 3)))
