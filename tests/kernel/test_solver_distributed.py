"""distributed=True: 2 gloo processes on the CPU give the single-process value."""

import json
import pathlib
import subprocess
import sys

import pytest

from dse_callback import diffusion_spectral_entropy

SCRIPT = pathlib.Path(__file__).with_name("solver_gloo_script.py")


@pytest.fixture(scope="module")
def gloo_results(tmp_path_factory):
    out = tmp_path_factory.mktemp("gloo") / "results.json"
    subprocess.run([sys.executable, str(SCRIPT), str(out), "600"], check=True, capture_output=True, timeout=300)
    return json.loads(out.read_text())


def test_two_gloo_processes_give_the_single_process_value(gloo_results):
    ranks, single = gloo_results["ranks"], gloo_results["single"]
    assert ranks[0] == ranks[1]  # every rank returns the same values
    for key in ("dse_t1", "dse_t3"):
        value, stderr, solver = ranks[0][key]
        assert solver == "slq" and stderr > 0
        assert abs(value - single[key]) <= 1e-5
    assert abs(ranks[0]["dse_blocked"] - single["dse_t1"]) <= 1e-5
    # One rank short of memory: every rank takes the blocked path (the same collectives).
    assert [rank["dse_mixed_budget"][1] for rank in ranks] == ["blocked", "blocked"]
    assert abs(ranks[0]["dse_mixed_budget"][0] - single["dse_t1"]) <= 1e-5
    assert abs(ranks[0]["dsmi"] - single["dsmi"]) <= 1e-5


def test_the_solver_runs_its_collectives_on_the_group_it_is_given(gloo_results):
    ranks = gloo_results["ranks"]
    assert ranks[0]["dse_group"] == ranks[1]["dse_group"] == ranks[0]["dse_t1"][0]
    message, seconds = gloo_results["abandoned"]
    assert "Timed out" in message and seconds < 60  # the group's 2 s, not the default group's 30 minutes


def test_ranks_disagreeing_in_d_get_a_named_error(gloo_results):
    for rank in gloo_results["ranks"]:
        assert "different number of columns D" in rank["d_mismatch"] and "{0: 16, 1: 17}" in rank["d_mismatch"]


def test_distributed_without_a_process_group_is_refused():
    with pytest.raises(RuntimeError, match="distributed=True needs an initialized torch.distributed"):
        diffusion_spectral_entropy([[0.0], [1.0]], distributed=True)
