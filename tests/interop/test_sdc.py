"""IEEE 11073 SDC: sdc11073's own consumer discovers the virtual pump, reads its metrics, gets changes and alerts,
and a SetValue on the rate becomes a titration that waits for confirmation at the pump."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

from samples import PUMP
from sdc11073 import observableproperties
from sdc11073.consumer.consumerimpl import SdcConsumer
from sdc11073.definitions_sdc import SdcV1Definitions
from sdc11073.mdib import ConsumerMdib
from sdc11073.wsdiscovery import WSDiscovery
from sdc11073.xml_types.actions import periodic_actions
from sdc11073.xml_types.msg_types import InvocationState
from test_device_reports import FLUID, started

from openinfusion.errors import OpenInfusionError
from openinfusion.interop.sdc.provider import PumpProvider
from openinfusion.pump.alarms import AlarmCode
from openinfusion.pump.programs import Titration
from openinfusion.units import Duration, FlowRate


def wait(test: Any, timeout: float = 15.0) -> None:
    end = time.monotonic() + timeout
    while not test():
        if time.monotonic() > end:
            raise AssertionError("timed out waiting for the SDC consumer")
        time.sleep(0.05)


def test_consumer_discovers_reads_subscribes_and_requests() -> None:
    w = started(FLUID | {"RXG-5": "500"})
    w.advance(Duration.min(2))

    def rate_request(pump_id: str, channel: int, rate: FlowRate) -> str | None:
        try:
            w.pump(pump_id).titrate(channel - 1, Titration(rate))
        except OpenInfusionError as e:
            return str(e)
        return None

    provider = PumpProvider(PUMP, 1, rate_request)
    provider.start()
    discovery = WSDiscovery("127.0.0.1")
    discovery.start()
    consumer = None
    try:
        provider.publish(w.status(PUMP))
        services = [s for s in discovery.search_services(types=SdcV1Definitions.MedicalDeviceTypesFilter, timeout=3)
                    if s.epr == provider.epr.urn]  # fmt: skip
        assert len(services) == 1
        consumer = SdcConsumer.from_wsd_service(services[0], ssl_context_container=None)
        consumer.start_all(not_subscribed_actions=periodic_actions)
        mdib = ConsumerMdib(consumer)
        mdib.init_mdib()
        assert mdib.entities.by_handle("flow.ch1").state.MetricValue.Value == Decimal("100")
        assert mdib.entities.by_handle("drug.ch1").state.MetricValue.Value == "maintenance IV fluid"
        changes: list[Any] = []

        def on_metrics(states: Any) -> None:  # a named function: observables hold their callbacks weakly
            changes.append(states)

        observableproperties.bind(mdib, metrics_by_handle=on_metrics)
        w.advance(Duration.min(1))
        provider.publish(w.status(PUMP))
        wait(lambda: any("delivered.ch1" in c for c in changes))
        delivered = mdib.entities.by_handle("delivered.ch1").state.MetricValue.Value
        assert Decimal("4.9") < delivered < Decimal("5.2")  # 3 min at 100 mL/h

        alerts: list[Any] = []

        def on_alerts(states: Any) -> None:
            alerts.append(states)

        observableproperties.bind(mdib, alert_by_handle=on_alerts)
        w.hardware(PUMP).channel(0).set_occlusion("downstream", True)
        w.advance(Duration.min(3))
        provider.publish(w.status(PUMP))
        wait(lambda: mdib.entities.by_handle("occlusion.ch1").state.Presence is True)
        assert any("occlusion.ch1" in a for a in alerts)

        w.hardware(PUMP).channel(0).set_occlusion("downstream", False)
        w.pump(PUMP).reset_alarm(0, AlarmCode.OCCLUSION_DOWNSTREAM)
        w.pump(PUMP).resume(0)
        future = consumer.set_service_client.set_numeric_value("set-rate.ch1", Decimal("120"))
        result = future.result(timeout=10)
        assert result.InvocationInfo.InvocationState == InvocationState.FINISHED_MOD
        channel = w.pump(PUMP).channels[0]
        assert channel.pending is not None and channel.rate() == FlowRate.ml_h(100)  # waits for the clinician
        w.pump(PUMP).confirm_titration(0)
        assert channel.rate() == FlowRate.ml_h(120)
        refused = consumer.set_service_client.set_numeric_value("set-rate.ch1", Decimal("5000")).result(timeout=10)
        assert refused.InvocationInfo.InvocationState == InvocationState.FAILED
        assert channel.rate() == FlowRate.ml_h(120) and channel.pending is None
    finally:
        if consumer is not None:
            consumer.stop_all(unsubscribe=False)
        discovery.stop()
        provider.stop()
