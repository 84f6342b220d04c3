"""KSG against the closed-form MI of a correlated Gaussian pair; MINE learns and is seeded."""

import math

import numpy as np
import pytest
import torch

from dse_experiments.mi_estimators import ksg_mutual_information, mine_mutual_information

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _gaussian_pair(rho: float, n: int, seed: int):
    g = np.random.default_rng(seed)
    x = g.normal(size=n)
    return x, rho * x + math.sqrt(1 - rho**2) * g.normal(size=n)


@pytest.mark.parametrize("rho", [0.0, 0.6, 0.9])
def test_ksg_gives_the_closed_form_mi_of_a_correlated_gaussian_pair(rho):
    x, y = _gaussian_pair(rho, 1500, seed=1)
    exact = -0.5 * math.log(1 - rho**2)
    assert ksg_mutual_information(x, y, k=3) == pytest.approx(exact, abs=0.05)


def test_ksg_handles_vectors_and_blocks():
    # 2-D x whose first coordinate carries y; more rows than one search block.
    g = np.random.default_rng(2)
    x = g.normal(size=(1100, 2))
    y = 0.8 * x[:, 0] + 0.6 * g.normal(size=1100)
    assert ksg_mutual_information(x, y) == pytest.approx(-0.5 * math.log(1 - 0.64), abs=0.06)


def test_ksg_rejects_bad_arguments():
    with pytest.raises(ValueError, match="k must be"):
        ksg_mutual_information(np.zeros(5), np.zeros(5), k=5)
    with pytest.raises(ValueError, match="pair up"):
        ksg_mutual_information(np.zeros(5), np.zeros(4))
    with pytest.raises(ValueError, match="NaN"):
        ksg_mutual_information(np.array([0.0, np.nan]), np.zeros(2))


def test_mine_loss_goes_down_and_finds_dependence():
    x, y = _gaussian_pair(0.95, 1000, seed=3)  # exact MI 1.16 nats = 1.68 bits
    state = torch.get_rng_state()
    bits, losses = mine_mutual_information(x, y, epochs=20, batch_size=100, lr=1e-3, seed=0)
    assert torch.equal(torch.get_rng_state(), state), "MINE touched the global RNG"
    assert len(losses) == 200
    assert np.mean(losses[-50:]) < np.mean(losses[:50]) - 0.3
    assert 0.5 < bits < 1.68 + 0.2  # a lower bound, so it must not overshoot the truth by much


def test_mine_is_seeded():
    x, y = _gaussian_pair(0.5, 200, seed=4)
    first = mine_mutual_information(x, y, epochs=2, batch_size=50, seed=7)
    assert mine_mutual_information(x, y, epochs=2, batch_size=50, seed=7) == first
    assert mine_mutual_information(x, y, epochs=2, batch_size=50, seed=8) != first


def test_mine_rejects_bad_arguments():
    with pytest.raises(ValueError, match="batch_size"):
        mine_mutual_information(np.zeros(10), np.zeros(10), batch_size=11)
    with pytest.raises(ValueError, match="epochs"):
        mine_mutual_information(np.zeros(10), np.zeros(10), epochs=0, batch_size=5)
