"""DSEMonitor for the `lightning.pytorch` namespace (`import lightning`).

A callback that subclasses `pytorch_lightning.Callback` is rejected by a
`lightning.pytorch.Trainer` and the other way round, so each namespace gets its own class;
both share `DSEMonitorLogic`.
"""

import lightning.pytorch

from .monitor_logic import DSEMonitorLogic


class DSEMonitor(DSEMonitorLogic, lightning.pytorch.Callback):
    __doc__ = DSEMonitorLogic.__doc__


__all__ = ["DSEMonitor"]
