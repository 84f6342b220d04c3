"""Measuring the representations of a probe, and tracking them over training.

- `settings`: every option of the tracker and the monitors, declared once;
- `metrics`: the table of metric specs (keys, needs, cost, chart) and the watched layers;
- `measurer`: every selected metric of every layer, the bandwidth resolved once per layer, never raising;
- `records`, `diagnostics`: what a tracker keeps of its probes (history, profiles), and the
  saturation checks that read it;
- `shared`: that work spread over the ranks, every rank ending with the same values;
- `async_worker`, `async_probes`: measuring off the training path, on one thread;
- `tracker`: `DSETracker`, the Lightning-free core the integrations wrap.

Imports `distributed`, `probe`, `report` and `kernel`; no framework.
"""
