"""The runnable examples: a plain PyTorch loop and a Lightning Fabric loop with DSETracker."""

import math
import pathlib
import random
import re
import runpy

import numpy as np
import pytest
import torch

EXAMPLES = pathlib.Path(__file__).resolve().parents[2] / "examples"


@pytest.mark.parametrize("script", ["plain_loop.py", "fabric_loop.py"])
def test_the_example_trains_and_prints_rising_finite_values(script, capsys):
    python_state, numpy_state = random.getstate(), np.random.get_state()
    with torch.random.fork_rng():  # the examples seed the global RNGs; other tests keep theirs
        namespace = runpy.run_path(str(EXAMPLES / script), run_name="__main__")
    random.setstate(python_state)
    np.random.set_state(numpy_state)
    lines = re.findall(r"epoch (\d): DSE\(Z\) (\S+) bits, DSMI\(Z; Y\) (\S+) bits", capsys.readouterr().out)
    assert [int(epoch) for epoch, _, _ in lines] == [0, 1, 2, 3]
    dse, dsmi = ([float(line[i]) for line in lines] for i in (1, 2))
    assert all(np.isfinite(dse + dsmi))
    # Training pulls the probe into its three classes: under the default scale-free bandwidth
    # (rms) DSE falls towards log2 3 and DSMI(Z; Y) rises towards it.
    assert math.log2(3) < dse[-1] < dse[0] - 0.5 and dsmi[0] + 0.2 < dsmi[-1] < math.log2(3)
    assert sorted(namespace["tracker"].history) == [0, 1, 2, 3]
