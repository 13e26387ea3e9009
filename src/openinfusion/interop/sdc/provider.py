"""A virtual pump as an IEEE 11073 SDC provider (sdc11073; interop.md §6).

:class:`PumpProvider` publishes the MDIB of :func:`~openinfusion.interop.sdc.mdib.pump_mdib` with
WS-Discovery on one IPv4 address (loopback in tests), and :meth:`PumpProvider.publish` copies a
:class:`~openinfusion.interop.gateway.PumpStatus` into it: metric values (mL/h, mL) and alert
conditions (present when the pump has the matching alarm). Subscribed consumers get the changes as
episodic reports.

External control stays a request (SDPi-xC; interop.md §6.4): the SetValue operation on a channel's rate
is handed to ``rate_request`` (for a ward pump, a titration the clinician must confirm at the pump); the
metric does not change until the pump delivers the new rate. The operation ends FINISHED_MOD when the
request is pending at the pump, FAILED (with the pump's reason) when it refused. sdc11073 is not meant for
the therapy path (its README): this is for simulation, gateways and tests.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any, cast

from sdc11073.definitions_sdc import SdcV1Definitions
from sdc11073.location import SdcLocation
from sdc11073.mdib import ProviderMdib
from sdc11073.provider import SdcProvider
from sdc11073.provider.operations import ExecuteParameters, ExecuteResult, SetValueOperation
from sdc11073.provider.providerimpl import RoleProviderComponents
from sdc11073.wsdiscovery import WSDiscovery
from sdc11073.xml_types.dpws_types import ThisDeviceType, ThisModelType
from sdc11073.xml_types.msg_types import InvocationState
from sdc11073.xml_types.pm_types import AlertActivation, MeasurementValidity

from openinfusion.errors import OpenInfusionError
from openinfusion.interop.gateway import PumpStatus
from openinfusion.interop.hl7.observations import number
from openinfusion.interop.sdc.mdib import ALERTS, pump_mdib
from openinfusion.units import FlowRate, Volume

#: (pump id, channel 1-based, requested rate) -> None if now pending at the pump, else the refusal in words
RateRequest = Callable[[str, int, FlowRate], str | None]
_NAMESPACE = uuid.UUID("5a0e7c2e-9f1b-4f4e-8d55-6f70656e696e")


class RequestRefusedError(OpenInfusionError):
    """The pump refused a remote request (the consumer sees FAILED and this text)."""


class _Operations:
    """The role provider sdc11073 asks for: registers the SetValue rate operations of one SCO."""

    def __init__(self, mdib: Any, sco: Any, handle: Callable[[ExecuteParameters], ExecuteResult]) -> None:
        self.mdib, self.sco, self.handle = mdib, sco, handle

    def init_operations(self) -> None:
        kind = self.mdib.data_model.pm_names.SetValueOperationDescriptor
        for entity in self.mdib.entities.by_node_type(kind):
            if entity.parent_handle == self.sco.sco_descriptor_container.Handle:
                target = cast(Any, entity.descriptor).OperationTarget
                self.sco.register_operation(
                    SetValueOperation(entity.handle, target, self.handle, delayed_processing=False)
                )

    def stop(self) -> None:
        """Nothing runs in the background."""

    def make_operation_instance(self, *_: object) -> None:
        return None


class PumpProvider:
    """One pump on SDC (see the module docstring). Start with :meth:`start`, stop with :meth:`stop`."""

    def __init__(self, pump_id: str, channels: int, rate_request: RateRequest, ip: str = "127.0.0.1") -> None:
        self.pump_id = pump_id
        self.rate_request = rate_request
        self.mdib = ProviderMdib.from_string(pump_mdib(channels), SdcV1Definitions)
        self.epr = uuid.uuid5(_NAMESPACE, pump_id)
        self.discovery = WSDiscovery(ip)
        model = ThisModelType(manufacturer="openinfusion", manufacturer_url="https://openinfusion.invalid",
                              model_name="openinfusion virtual LVP", model_number="1", model_url="https://openinfusion.invalid",
                              presentation_url="https://openinfusion.invalid")  # fmt: skip
        device = ThisDeviceType(friendly_name=pump_id, firmware_version="openinfusion", serial_number=pump_id)
        roles = RoleProviderComponents(
            role_provider_class=lambda mdib, sco, _prefix: _Operations(mdib, sco, self._set_rate)
        )
        self.provider = SdcProvider(self.discovery, model, device, self.mdib, epr=self.epr,
                                    role_provider_components=roles)  # fmt: skip

    def start(self, location: SdcLocation | None = None) -> None:
        self.discovery.start()  # type: ignore[no-untyped-call]
        self.provider.start_all(start_rtsample_loop=False, periodic_reports_interval=60.0)  # no waveforms
        self.provider.set_location(location or SdcLocation(fac="openinfusion", poc="ward", bed=self.pump_id))

    def stop(self) -> None:
        self.provider.stop_all()
        self.discovery.stop()  # type: ignore[no-untyped-call]

    def publish(self, status: PumpStatus) -> None:
        """Copy ``status`` into the MDIB: metric values, then alert condition presence."""
        metrics: Any = self.mdib.metric_state_transaction()
        with metrics as tr:
            for channel in status.channels:
                n = channel.number
                values: dict[str, Decimal | str | None] = {
                    "flow": _ml_h(channel.rate), "delivered": _ml(channel.delivered),
                    "vtbi": None if channel.vtbi is None else _ml(channel.vtbi),
                    "remaining": None if channel.remaining is None else _ml(channel.remaining),
                    "status": "pump-status-" + ("infusing" if channel.state in {"infusing", "kvo"} else "not-infusing"),
                    "drug": channel.drug_label,
                }  # fmt: skip
                for name, value in values.items():
                    state = tr.get_state(f"{name}.ch{n}")
                    if state.MetricValue is None:
                        state.mk_metric_value()
                    state.MetricValue.Value = value
                    state.MetricValue.MetricQuality.Validity = MeasurementValidity.VALID
        alerts: Any = self.mdib.alert_state_transaction()
        with alerts as tr:
            for channel in status.channels:
                for name, _, codes in ALERTS:
                    state = tr.get_state(f"{name}.ch{channel.number}")
                    state.ActivationState = AlertActivation.ON
                    state.Presence = any(code in channel.alarms for code in codes)

    def _set_rate(self, params: ExecuteParameters) -> ExecuteResult:
        target = params.operation_instance.operation_target_handle  # type: ignore[attr-defined]
        channel = int(target.rsplit(".ch", 1)[1])
        requested = cast(Any, params.operation_request).RequestedNumericValue
        refusal = self.rate_request(self.pump_id, channel, FlowRate.ml_h(str(requested)))
        if refusal is not None:  # sdc11073 reports an exception as FAILED with its text as the error message
            raise RequestRefusedError(refusal)
        return ExecuteResult(InvocationState.FINISHED_MOD, self.mdib.mdib_version_group, target)


def _ml_h(rate: FlowRate) -> Decimal:
    return Decimal(number(rate.in_ml_h))


def _ml(volume: Volume) -> Decimal:
    return Decimal(number(volume.in_ml))
