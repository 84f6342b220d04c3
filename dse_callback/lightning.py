"""DSEMonitor for the `lightning.pytorch` namespace (`import lightning`); a shim.

A `pytorch_lightning` callback is rejected by a `lightning.pytorch.Trainer`, so this
namespace has its own class: `from dse_callback.lightning import DSEMonitor`, then
`lightning.pytorch.Trainer(callbacks=[DSEMonitor()])`.
"""

from .integrations.lightning_callback import DSEMonitor

__all__ = ["DSEMonitor"]
