"""The probe: which samples are measured, how they are read, and the forward pass.

- `batches`: reading inputs and labels out of any batch layout;
- `probe_set`: the fixed, seeded probe set and its batches;
- `cache`: the probe's inputs read once, kept on the device, pinned or re-read;
- `shares`: a probe split into contiguous shares with equal forward calls;
- `capture`: forward hooks that record the watched layers;
- `pooling`: whatever a layer returns (tuples, dicts, ModelOutputs; sequences) to one row per sample;
- `forward_pass`: one pass of the probe, isolated (RNG, eval mode, inference mode).

Imports `kernel` only; no Lightning, no collectives.
"""
