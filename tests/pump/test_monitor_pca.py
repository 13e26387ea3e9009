"""The independent monitor models the PCA semantics of open-pca-requirements.md, and still catches faults in them.

A clinician bolus runs on top of the basal (R5.3.0(2)); at the dose limit the pump drops to KVO (R5.2.0(5)); Stop
then Start drops the rest of an interrupted bolus (R6.5.0). The monitor must expect each of these (no false trip)
and must never allow more than the confirmed profile (a runaway at the dose limit is caught against KVO).
"""

from __future__ import annotations

from dataclasses import replace
from fractions import Fraction

import pytest

from openinfusion.pump.alarms import AlarmCode
from openinfusion.pump.confirmed import ConfirmedBolus, ConfirmedProgram, Drug, Pca
from openinfusion.pump.dosing import Concentration
from openinfusion.pump.eventlog import EventKind
from openinfusion.pump.pca import PcaProgram
from openinfusion.pump.programs import Bolus
from openinfusion.pump.safety_model import Expectation, Grid
from openinfusion.pump.statechart import ChannelState
from openinfusion.sim.firmware_faults import Runaway, inject_controller
from openinfusion.units import Duration, FlowRate, Quantity, Volume

from rig import Rig

MONITOR = {AlarmCode.DELIVERY_ACCURACY.value, AlarmCode.MOTION_MISMATCH.value, AlarmCode.REVERSE_DELIVERY.value}
MG_PER_ML = Concentration.from_quantity(Quantity.parse("1 mg/mL"))


def _trips(rig: Rig) -> list[str]:
    return [str(e.data["detail"]) for e in rig.pump.log.events() if e.data.get("code") in MONITOR]


def _started(rig: Rig, **overrides: object) -> Rig:
    fields: dict[str, object] = {
        "concentration": MG_PER_ML, "demand_dose": Quantity.parse("1 mg"), "lockout": Duration.min(10),
        "basal": Quantity.parse("2 mg/h"), "demand_rate": FlowRate.ml_h(60), "limits": rig.limits(),
    }  # fmt: skip
    rig.pump.program(0, PcaProgram(**(fields | overrides)))  # type: ignore[arg-type]
    rig.pump.start(0)
    rig.run_for(Duration.min(5))
    return rig


def _expectation(basal: str | None) -> Expectation:
    """The monitor's model of a 1 mg/mL PCA (or, without ``basal``, a 2 mL/h continuous infusion), Fmax 10 mL/h."""
    model = Expectation(Grid(FlowRate(1_000), FlowRate.ml_h(10)))
    drug = Drug(amount=Quantity.parse("1 mg"), volume=Quantity.parse("1 mL"))
    pca = Pca(
        drug=drug, demand_dose=Quantity.parse("1 mg"), demand_rate=FlowRate.ml_h(6), lockout=Duration.min(10),
        basal=None if basal is None else Quantity.parse(basal), loading=None,
    )  # fmt: skip
    model.confirm(ConfirmedProgram(parts=(pca,), kvo=FlowRate.ml_h(1)))
    return model


@pytest.mark.req("OPENPCA-R5-3-0-2", "OI-SAFE-4")
def test_the_monitor_expects_a_pca_clinician_bolus_on_top_of_the_basal_capped_at_fmax() -> None:
    model = _expectation("2 mg/h")
    model.push_bolus(ConfirmedBolus(volume=Volume.ml(1), rate=FlowRate.ml_h(6)))
    phase = model.current()
    assert (phase.rate, phase.volume) == (8_000_000, Volume.ml(1).nl * 8 // 6)  # 1 mL in 10 min, with its basal
    capped = _expectation("2 mg/h")
    capped.push_bolus(ConfirmedBolus(volume=Volume.ml(1), rate=FlowRate.ml_h(9)))
    assert capped.current().rate == FlowRate.ml_h(10).nl_per_h  # min(9 + 2, Fmax 10)
    assert capped.current().volume == Volume.ml(1).nl * 10 // 8  # 1 mL at the 8 mL/h left above the basal


@pytest.mark.req("OPENPCA-R5-3-0-2", "OI-SAFE-4")
def test_a_pca_clinician_bolus_never_trips_the_monitor_and_a_runaway_during_it_does() -> None:
    rig = _started(Rig())
    rig.pump.bolus(0, Bolus.request(Volume.ml(3), Duration.min(30), rig.limits()))  # 6 mL/h + 2 mL/h basal
    rig.run_for(Duration.min(35))
    assert not _trips(rig) and rig.pump.channels[0].state is ChannelState.INFUSING
    rig.pump.bolus(0, Bolus.request(Volume.ml(3), Duration.min(30), rig.limits()))
    rig.run_for(Duration.min(2))
    inject_controller(rig.pump.channels[0], rig.world.hardware.clock.now, Runaway(Fraction(3, 2), rig.now))
    rig.run_for(Duration.min(3))
    assert any(t.startswith("SM-2") for t in _trips(rig))  # 12 mL/h against the 8 mL/h of bolus and basal


@pytest.mark.req("OPENPCA-R5-2-0-5", "OI-SAFE-4")
def test_at_the_dose_limit_the_monitor_expects_kvo_and_the_basal_again_when_there_is_room() -> None:
    rig = _started(Rig(), basal=Quantity.parse("3 mg/h"), limit_1h=Quantity.parse("4 mg"))
    rig.pump.pca_demand(0)
    rig.run_for(Duration.h(2))  # capped after ~1 h, room again at 90 % of the limit, the basal again
    rates = [e.data["rate"]["value"] for e in rig.events(EventKind.RATE_CHANGED, 0)]  # type: ignore[index]
    assert rig.raised(AlarmCode.MAX_DOSE) and rates[-2:] == ["1", "3"]  # KVO, then the basal
    assert not _trips(rig) and rig.pump.channels[0].state is ChannelState.INFUSING


@pytest.mark.req("OPENPCA-R5-2-0-5", "OI-SAFE-2", "UMN-GPCA-REQ-19")
def test_at_the_dose_limit_a_controller_delivering_above_kvo_is_caught() -> None:
    """2.5 mL/h is below the 3 mL/h basal the monitor would allow without the cap, far above the 1 mL/h KVO."""
    rig = _started(Rig(), basal=Quantity.parse("3 mg/h"), limit_1h=Quantity.parse("4 mg"))
    rig.pump.pca_demand(0)
    rig.run_for(Duration.min(60))  # capped after ~1 h
    assert rig.raised(AlarmCode.MAX_DOSE) and rig.pump.channels[0].rate() == FlowRate.ml_h(1)
    assert not _trips(rig)
    inject_controller(rig.pump.channels[0], rig.world.hardware.clock.now, Runaway(Fraction(5, 2), rig.now))
    rig.run_for(Duration.min(5))
    assert any(t.startswith("SM-2") for t in _trips(rig))
    assert rig.pump.channels[0].state is ChannelState.FAILSAFE


@pytest.mark.req("OPENPCA-R5-2-0-5", "OI-SAFE-2", "OI-SAFE-4")
def test_a_delivery_side_that_loses_the_dose_limit_is_stopped_by_the_monitors_own_count() -> None:
    """The channel's copy of the program loses its 1-hour limit (a single fault): it grants a second demand the 4 mg
    limit leaves no room for. The monitor counts what it measured against the confirmed limit itself and trips."""
    rig = _started(Rig(), basal=Quantity.parse("3 mg/h"), limit_1h=Quantity.parse("4 mg"))
    channel = rig.pump.channels[0]
    assert isinstance(channel.program, PcaProgram)
    channel.program = replace(channel.program, limit_1h=None)
    rig.pump.pca_demand(0)
    rig.run_for(Duration.min(40))
    assert not _trips(rig)  # 3 mL of basal and demand in the last hour: below the limit, nothing to say
    rig.pump.pca_demand(0)  # 3 mL + 1 mL demand + the basal meanwhile: past the 4 mg limit
    rig.run_for(Duration.min(5))
    assert not rig.raised(AlarmCode.MAX_DOSE)  # the channel did not see the limit
    assert any(t.startswith("SM-2") for t in _trips(rig)) and channel.state is ChannelState.FAILSAFE
    assert rig.delivered().nl <= Volume.ml("4.1").nl  # never much past the limit (the 5 min before it counted too)


@pytest.mark.req("OPENPCA-R6-5-0-3", "OI-SAFE-4")
@pytest.mark.parametrize("what", ["clinician bolus", "loading dose"])
def test_stop_then_start_drops_the_rest_of_a_pca_bolus_for_the_monitor_too(what: str) -> None:
    rig = Rig()
    if what == "loading dose":
        program = {"loading": Quantity.parse("3 mg"), "demand_rate": FlowRate.ml_h(6)}  # 30 min of loading
        rig.pump.program(0, PcaProgram(
            concentration=MG_PER_ML, demand_dose=Quantity.parse("1 mg"), lockout=Duration.min(10),
            basal=Quantity.parse("1 mg/h"), limits=rig.limits(), **program,  # type: ignore[arg-type]
        ))  # fmt: skip
        rig.pump.start(0)
        rig.run_for(Duration.min(5))
    else:
        _started(rig, basal=Quantity.parse("1 mg/h"))
        rig.pump.bolus(0, Bolus.request(Volume.ml(3), Duration.min(30), rig.limits()))
        rig.run_for(Duration.min(5))
    rig.pump.pause(0)
    rig.run_for(Duration.min(1))
    rig.pump.resume(0)
    rig.run_for(Duration.min(10))
    assert rig.pump.channels[0].rate() == FlowRate.ml_h(1)  # the basal: the rest was dropped
    assert not _trips(rig)
