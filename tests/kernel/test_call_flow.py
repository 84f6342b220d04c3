"""A DSE or DSMI call goes one way down the kernel: validated and resolved once at its entry,
then down to the solvers and the geometry, never calling back up a layer."""

import types

import pytest
import torch

from dse_callback import (
    classic_shannon_mutual_information,
    diffusion_entropy_profile,
    diffusion_spectral_entropy,
    diffusion_spectral_mutual_information,
    diffusion_spectrum,
)
from dse_callback.kernel.solvers import run

from call_trace import KERNEL_LAYERS, trace_calls, upward_calls

Z = torch.randn(300, 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
LABELS = torch.arange(300) % 3

CALLS = {
    "dse exact": (diffusion_spectral_entropy, (Z,), {"sigma": 2.0, "solver": "exact"}),
    "dse slq": (diffusion_spectral_entropy, (Z,), {"sigma": "median", "solver": "slq"}),
    "dsmi exact": (diffusion_spectral_mutual_information, (Z, LABELS), {"sigma": 2.0}),
    "dsmi slq": (diffusion_spectral_mutual_information, (Z, LABELS), {"sigma": 2.0, "solver": "slq"}),
    "dse knn": (diffusion_spectral_entropy, (Z,), {"sigma": "knn", "solver": "slq"}),
    "dsmi knn": (diffusion_spectral_mutual_information, (Z, LABELS), {"sigma": "knn", "solver": "slq"}),
    "dsmi rms": (diffusion_spectral_mutual_information, (Z, LABELS), {"sigma": "rms"}),
    "profile": (diffusion_entropy_profile, (Z,), {"sigma": "knn", "max_samples": 200}),
    "spectrum": (diffusion_spectrum, (Z,), {"sigma": "median"}),
    "csmi": (classic_shannon_mutual_information, (Z, LABELS), {}),
}


@pytest.mark.parametrize("name", list(CALLS))
def test_no_call_climbs_back_up_a_layer(name, one_torch_thread):
    function, args, kwargs = CALLS[name]
    edges = trace_calls(function, *args, **kwargs)
    assert edges, "the trace saw no call between modules"
    assert upward_calls(edges) == []


@pytest.mark.parametrize("name", ["dse exact", "dse slq", "dsmi exact", "dsmi slq", "dse knn", "dsmi knn", "dsmi rms"])
def test_validation_bandwidth_and_dtype_are_resolved_once(name, one_torch_thread):
    function, args, kwargs = CALLS[name]
    decisions: dict = {}
    trace_calls(function, *args, decisions=decisions, **kwargs)
    assert decisions["as_points"] == 1
    assert decisions["bandwidth_for"] == 1
    assert decisions["check_solver_settings"] == 1
    assert decisions["solver_dtype"] == 1
    assert decisions.get("resolve_dtype", 0) <= 1


def test_the_profile_resolves_its_bandwidth_once_for_every_multiplier(one_torch_thread):
    function, args, kwargs = CALLS["profile"]
    decisions: dict = {}
    trace_calls(function, *args, decisions=decisions, **kwargs)
    assert decisions["bandwidth_for"] == 1 and decisions["as_points"] == 1


def test_the_trace_sees_a_call_back_up(monkeypatch):
    # A broken variant: the exact solver asks a function of the public entropy module.
    from dse_callback.kernel import entropy

    # The lambda runs with the entropy module as its globals, where entropy_of_spectrum is defined.
    in_entropy = types.FunctionType((lambda values, t: entropy_of_spectrum(values, t)).__code__, vars(entropy))  # noqa: F821
    monkeypatch.setattr(run, "entropy_of_spectrum", in_entropy)
    edges = trace_calls(diffusion_spectral_entropy, Z, sigma=2.0, solver="exact")
    assert ("dse_callback.kernel.solvers.run", "dse_callback.kernel.entropy") in upward_calls(edges)
    assert len(KERNEL_LAYERS) == 6
