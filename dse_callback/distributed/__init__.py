"""Probing under DDP: each rank's share through the model, gathered in probe order, with bounded waits.

- `probe_shares`: the `Runtime` a framework passes in, and `forward_shares`;
- `sharding`: gathering row shares, assigning metric work to ranks, combining results;
- `groups`: the probe's own gloo process groups, whose waits are bounded by `collective_timeout`;
- `session`: one probe's collectives and the agreements between its steps, so that a rank
  that fails (or times out) sends every rank down the same NaN path with one warning.

The training's collectives are never used. Imports `probe` and `kernel`.
"""
