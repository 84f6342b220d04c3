"""From points to the diffusion kernel: distances, the bandwidth, the affinity.

The bottom of the math: imports only `kernel.validation`, torch and NumPy.
"""
