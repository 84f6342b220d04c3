"""The math: DSE, DSMI, their Shannon baselines and RankMe, on any tensor, in pure torch.

Owns the distances, the bandwidth, the diffusion kernel, the spectra, the entropies, the
mutual information, the clustering of references and the solvers. Imports torch, NumPy
and SciPy only: no Lightning, nothing from the probe or the monitor. A call goes one way
down: a public module (`entropy`, `mutual_info`, `spectrum`, `profile`, `shannon`, `rankme`)
validates once through `request`, which resolves the bandwidth, dtype and solver into one
request; `solvers` runs it on `geometry`. `sigma` is a number (the paper's fixed bandwidth)
or a scale-free preset, "median", "rms", "knn" or a `Bandwidth` (see `geometry.bandwidth`).
"""

from .entropy import diffusion_spectral_entropy, entropy_of_spectrum, saturation_message
from .errors import BandwidthWarning, EigensolverFallbackWarning, SkippedClassWarning
from .geometry.bandwidth import Bandwidth, ResolvedBandwidth, resolve_bandwidth
from .mutual_info import classic_shannon_mutual_information, diffusion_spectral_mutual_information
from .profile import EntropyProfile, diffusion_entropy_profile
from .rankme import rankme
from .reference.clustering import discretize_reference, downsample_images, spectral_clusters
from .shannon import classic_shannon_entropy
from .solvers.estimate import DSEEstimate, DSMIEstimate, SLQOptions
from .spectrum import diffusion_operator, diffusion_spectrum

__all__ = [
    "Bandwidth",
    "BandwidthWarning",
    "DSEEstimate",
    "DSMIEstimate",
    "EigensolverFallbackWarning",
    "EntropyProfile",
    "ResolvedBandwidth",
    "SLQOptions",
    "SkippedClassWarning",
    "classic_shannon_entropy",
    "classic_shannon_mutual_information",
    "diffusion_entropy_profile",
    "diffusion_operator",
    "diffusion_spectral_entropy",
    "diffusion_spectral_mutual_information",
    "diffusion_spectrum",
    "discretize_reference",
    "downsample_images",
    "entropy_of_spectrum",
    "rankme",
    "resolve_bandwidth",
    "saturation_message",
    "spectral_clusters",
]
