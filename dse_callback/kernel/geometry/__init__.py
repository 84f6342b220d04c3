"""From points to the diffusion kernel: distances, the scale statistics, the bandwidth, the affinity.

- `distances`: squared distances (one GEMM on centred points).
- `scales`: the statistics the presets multiply (median distance, RMS radius, kNN distances).
- `bandwidth`: `Bandwidth`, `ResolvedBandwidth`, and resolving a sigma on Z once.
- `affinity`: the Gaussian kernel (fixed sigma or per-point scales) and the diffusion operator.

The bottom of the math: imports only `kernel.validation`, torch and NumPy.
"""
