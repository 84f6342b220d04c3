"""dse_callback: diffusion spectral entropy and mutual information of neural representations.

The package follows a probe's flow, one subpackage per stage: `kernel` (the math) <-
`probe` (reading, capturing, the forward pass) <- `distributed` (shares and gathers) <-
`measure` (metrics and the `DSETracker`) <- `integrations` (Lightning, the Hugging Face
Trainer); `report` writes the history and the figures. This module re-exports the public
names; the framework adapters load on first use.
"""

from .distributed.probe_shares import Runtime
from .kernel import (
    Bandwidth,
    BandwidthWarning,
    DSEEstimate,
    DSMIEstimate,
    EigensolverFallbackWarning,
    EntropyProfile,
    ResolvedBandwidth,
    SkippedClassWarning,
    SLQOptions,
    classic_shannon_entropy,
    classic_shannon_mutual_information,
    diffusion_entropy_profile,
    diffusion_operator,
    diffusion_spectral_entropy,
    diffusion_spectral_mutual_information,
    diffusion_spectrum,
    discretize_reference,
    downsample_images,
    entropy_of_spectrum,
    rankme,
    resolve_bandwidth,
    spectral_clusters,
)
from .measure.tracker import DSETracker

__version__ = "0.2.0"  # the package metadata reads it (setup.cfg: version = attr:)

__all__ = [
    "Bandwidth",
    "BandwidthWarning",
    "DSEEstimate",
    "DSEMonitor",
    "DSMIEstimate",
    "DSETracker",
    "DSETrainerCallback",
    "EigensolverFallbackWarning",
    "EntropyProfile",
    "ResolvedBandwidth",
    "Runtime",
    "SLQOptions",
    "SkippedClassWarning",
    "classic_shannon_entropy",
    "classic_shannon_mutual_information",
    "discretize_reference",
    "downsample_images",
    "diffusion_entropy_profile",
    "diffusion_operator",
    "diffusion_spectral_entropy",
    "diffusion_spectral_mutual_information",
    "diffusion_spectrum",
    "entropy_of_spectrum",
    "rankme",
    "resolve_bandwidth",
    "spectral_clusters",
]


def __getattr__(name: str):
    # The callback pulls in pytorch_lightning; load it on first use so that the math stays
    # importable (and quick to import) without a Trainer.
    if name == "DSEMonitor":
        try:
            from .integrations.pl_callback import DSEMonitor
        except ModuleNotFoundError as error:
            if error.name != "pytorch_lightning":
                raise
            raise ImportError('DSEMonitor needs PyTorch Lightning: pip install "dse_callback[lightning]"') from error
        return DSEMonitor
    if name == "DSETrainerCallback":  # transformers loads only here, on first use
        from .integrations.huggingface import DSETrainerCallback

        return DSETrainerCallback
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
