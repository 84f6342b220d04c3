"""The reference variable B of mutual information, and the random draws.

`clustering` turns labels, scalars or vectors into class ids (binning in `binning`,
spectral clustering for vectors); `sampling` draws the seeded subsets. Imports only
`kernel.geometry`, `kernel.validation`, torch, NumPy and SciPy.
"""
