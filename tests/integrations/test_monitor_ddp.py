import json
import math
import os
import pathlib
import subprocess
import sys

import pytest

SCRIPT = pathlib.Path(__file__).with_name("ddp_script.py")


@pytest.mark.parametrize("namespace", ["pytorch_lightning", "lightning.pytorch"])
def test_two_cpu_processes_log_the_same_values_and_finish(tmp_path, namespace):
    pytest.importorskip(namespace)
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("LOCAL_RANK", "NODE_RANK", "WORLD_SIZE", "MASTER_"))
    }
    result = subprocess.run(
        [sys.executable, str(SCRIPT), str(tmp_path), namespace],
        capture_output=True,
        text=True,
        timeout=600,
        env=environment,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in (0, 1)]
    keys = {"dse/Z", "dsmi/Z_Y", "dsmi/Z_X", "dse/probe_seconds", "dse/epoch"}
    for rank in ranks:
        assert keys <= set(rank["logged"])
        assert all(math.isfinite(rank["logged"][key]) for key in keys)
    for key in ("dse/Z", "dsmi/Z_Y", "dsmi/Z_X", "dse/epoch"):
        assert ranks[0]["logged"][key] == ranks[1]["logged"][key]  # combined from the ranks' shares of the work
    # Each rank forwarded its share of the 45-sample probe, 3 calls each for 3 probes, after
    # one dry-run call of 4 rows in setup; rank 1's 22 rows fill 2 batches of 11, so it
    # repeats one batch (dropped) to match rank 0.
    assert [rank["probe_calls"] for rank in ranks] == [1 + 9, 1 + 9]
    assert [rank["probe_rows"] for rank in ranks] == [4 + 3 * 23, 4 + 3 * (22 + 11)]
    for rank in ranks:  # rank 1 failed before its gather at epoch 1: NaN and one warning on both
        assert all(math.isnan(rank["history"]["1"][metric]) for metric in ("dse", "dsmi_y", "dsmi_x"))
        assert all(math.isfinite(rank["history"][epoch]["dse"]) for epoch in ("0", "2"))
        assert len(rank["warnings"]) == 1, rank["warnings"]
        assert "gather of the representations failed on rank 0 (" in rank["warnings"][0]
        assert "Timed out" in rank["warnings"][0] and "rank 1 (MemoryError: injected" in rank["warnings"][0]
        assert rank["history"]["1"]["probe_seconds"] < 4 * 8.0  # the monitor's timeout, not torch's 30 minutes
        assert rank["groups_closed"]  # teardown destroyed the monitor's groups
    for rank in ranks:  # the sharded probe measures what one process measures on the same weights
        for key in ("dse/Z", "dsmi/Z_Y", "dsmi/Z_X"):
            assert rank["logged"][key] == pytest.approx(rank["one_process"][key], abs=1e-6)
        assert rank["history"]["2"]["n"] == 45
    assert ranks[0]["history_epochs"] == [0, 1, 2]  # rank 0 keeps the history
    assert ranks[0]["best"].endswith(".ckpt")  # ModelCheckpoint monitored dse/Z without hanging
    histories = list(tmp_path.glob("run/*/dse_history.csv"))
    assert len(histories) == 1 and len(histories[0].read_text().splitlines()) == 4
