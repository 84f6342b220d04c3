"""DSEMonitor for the `lightning.pytorch` namespace (`import lightning`); a shim.

from dse_callback.lightning import DSEMonitor
trainer = lightning.pytorch.Trainer(callbacks=[DSEMonitor()])
"""

from .integrations.lightning_callback import DSEMonitor

__all__ = ["DSEMonitor"]
