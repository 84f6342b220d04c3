"""distributed=True with scale-free bandwidths: on 2 gloo processes every rank resolves the
same bandwidth as one process (kNN scales split by rows, then gathered) and gets its values."""

import json
import pathlib
import subprocess
import sys

import pytest

SCRIPT = pathlib.Path(__file__).with_name("bandwidth_gloo_script.py")
N = 600


@pytest.fixture(scope="module")
def gloo_results(tmp_path_factory):
    out = tmp_path_factory.mktemp("gloo") / "results.json"
    subprocess.run([sys.executable, str(SCRIPT), str(out), str(N)], check=True, capture_output=True, timeout=300)
    return json.loads(out.read_text())


@pytest.mark.parametrize("sigma", ["median", "rms", "knn"])
def test_every_rank_resolves_the_single_process_bandwidth(gloo_results, sigma):
    ranks, single = gloo_results["ranks"], gloo_results["single"]
    assert ranks[0][sigma]["bandwidth"] == ranks[1][sigma]["bandwidth"]  # bit for bit
    assert ranks[0][sigma]["bandwidth"] == single[sigma]["bandwidth"]
    if sigma == "knn":
        assert len(ranks[0][sigma]["bandwidth"][1]) == N


def test_each_rank_computes_the_knn_scales_of_its_own_row_block(gloo_results):
    # One resolution per call (the bandwidth, the DSE, the DSMI), each on this rank's block of
    # the solver's even row split (not the uneven rows the ranks passed in: 303 and 297).
    assert gloo_results["split"] == N // 2 + 3
    assert gloo_results["ranks"][0]["knn_rows"] == [[0, N // 2]] * 3
    assert gloo_results["ranks"][1]["knn_rows"] == [[N // 2, N]] * 3


@pytest.mark.parametrize("sigma", ["median", "rms", "knn"])
def test_two_gloo_processes_give_the_single_process_values(gloo_results, sigma):
    ranks, single = gloo_results["ranks"], gloo_results["single"]
    for key in ("dse", "dsmi"):
        assert ranks[0][sigma][key] == ranks[1][sigma][key]
        assert abs(ranks[0][sigma][key] - single[sigma][key]) <= 1e-5
