import os
import pathlib
import subprocess

import pytest
import torch

SCRIPT = pathlib.Path(__file__).resolve().parents[2] / "benchmarks" / "gpu.sh"


@pytest.mark.skipif(torch.cuda.is_available(), reason="with CUDA the script runs for real: bash benchmarks/gpu.sh")
def test_gpu_script_fails_loudly_without_cuda_and_writes_nothing(tmp_path):
    report = tmp_path / "gpu_report.md"
    result = subprocess.run(
        ["bash", str(SCRIPT)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env={**os.environ, "GPU_REPORT": str(report)},
    )
    assert result.returncode == 2
    assert "FAILED: no CUDA device" in result.stderr and "nothing was run" in result.stderr
    assert result.stdout == "" and not report.exists()
