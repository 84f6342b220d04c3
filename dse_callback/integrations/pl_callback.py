"""DSEMonitor for the `pytorch_lightning` namespace (`import pytorch_lightning`)."""

import pytorch_lightning

from .monitor_logic import DSEMonitorLogic


class DSEMonitor(DSEMonitorLogic, pytorch_lightning.Callback):
    __doc__ = DSEMonitorLogic.__doc__


__all__ = ["DSEMonitor"]
