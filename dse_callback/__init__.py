"""dse_callback: diffusion spectral entropy and mutual information of neural representations."""

from .clustering import discretize_reference, downsample_images, spectral_clusters
from .diffusion import diffusion_operator
from .entropy import classic_shannon_entropy, diffusion_spectral_entropy, entropy_of_spectrum
from .errors import BandwidthWarning, EigensolverFallbackWarning, SkippedClassWarning
from .mutual_info import classic_shannon_mutual_information, diffusion_spectral_mutual_information
from .rankme import rankme
from .solvers import DSEEstimate, DSMIEstimate, SLQOptions
from .spectrum import diffusion_spectrum
from .tracker import DSETracker

__all__ = [
    "BandwidthWarning",
    "DSEEstimate",
    "DSEMonitor",
    "DSMIEstimate",
    "DSETracker",
    "EigensolverFallbackWarning",
    "SLQOptions",
    "SkippedClassWarning",
    "classic_shannon_entropy",
    "classic_shannon_mutual_information",
    "discretize_reference",
    "downsample_images",
    "diffusion_operator",
    "diffusion_spectral_entropy",
    "diffusion_spectral_mutual_information",
    "diffusion_spectrum",
    "entropy_of_spectrum",
    "rankme",
    "spectral_clusters",
]


def __getattr__(name: str):
    # The callback pulls in pytorch_lightning; load it on first use so that the math stays
    # importable (and quick to import) without a Trainer.
    if name == "DSEMonitor":
        from .monitor import DSEMonitor

        return DSEMonitor
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
