"""Virtual hardware with real physics: the simulator behind the pump core's HAL.

:class:`VirtualPump` is the entry point; configuration lives in :mod:`openinfusion.sim.params`, faults
in :mod:`openinfusion.sim.faults`. The equations and every parameter's source are in docs/physics.md.
The pump core never imports this package.
"""

from openinfusion.sim.channel import ChannelSeries, ChannelTruth, VirtualChannel, Wake, WakeReason
from openinfusion.sim.params import ChannelConfig, SyringeSize, VirtualPumpConfig
from openinfusion.sim.virtual_pump import SeriesBlock, Truth, VirtualPump

__all__ = [
    "ChannelConfig",
    "ChannelSeries",
    "ChannelTruth",
    "SeriesBlock",
    "SyringeSize",
    "Truth",
    "VirtualChannel",
    "VirtualPump",
    "VirtualPumpConfig",
    "Wake",
    "WakeReason",
]
