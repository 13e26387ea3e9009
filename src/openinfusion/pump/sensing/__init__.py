"""Software sensors of the pump core: pure, deterministic algorithms over sample batches.

The core calls them each time it services a channel, with the batches its HAL devices buffered
(:mod:`openinfusion.pump.hal`):

* :mod:`.occlusion`: downstream occlusion by threshold or pressure trend (OI-ALM-2), upstream occlusion
  (OI-ALM-4), and the wake threshold for the pressure ADC's watchdog;
* :mod:`.backoff`: the volume to reverse after an occlusion stop and the residual bolus (OI-ALM-3);
* :mod:`.air`: single-bubble (UMN-GPCA-REQ-21) and cumulative (OI-ALM-5) air-in-line;
* :mod:`.flow`: line compliance and the flow that reached the patient.

See ``docs/sensing.md`` for the physical model and the reasons behind each default.
"""

from openinfusion.pump.sensing.air import AirMonitor, AirVerdict, DeliveryTrace
from openinfusion.pump.sensing.backoff import backoff_volume, expected_release_bolus
from openinfusion.pump.sensing.flow import FlowEstimate, FlowEstimator, LineCompliance
from openinfusion.pump.sensing.occlusion import (
    DownstreamOcclusionDetector,
    OcclusionCause,
    OcclusionConfig,
    OcclusionVerdict,
    Sensitivity,
    UpstreamOcclusionDetector,
    UpstreamVerdict,
)

__all__ = [
    "AirMonitor",
    "AirVerdict",
    "DeliveryTrace",
    "DownstreamOcclusionDetector",
    "FlowEstimate",
    "FlowEstimator",
    "LineCompliance",
    "OcclusionCause",
    "OcclusionConfig",
    "OcclusionVerdict",
    "Sensitivity",
    "UpstreamOcclusionDetector",
    "UpstreamVerdict",
    "backoff_volume",
    "expected_release_bolus",
]
