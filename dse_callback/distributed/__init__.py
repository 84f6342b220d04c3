"""Probing under DDP: each rank's share through the model, gathered in probe order.

- `probe_shares`: the `Runtime` a framework passes in, and `forward_shares`;
- `sharding`: gathering row shares, assigning metric work to ranks, combining results.

The collectives are passed in, never imported from a framework. Imports `probe` and `kernel`.
"""
