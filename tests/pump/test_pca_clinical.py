"""PCA on the pump, against Open PCA's requirements (open-pca-requirements.md): a patient bolus on top of the
basal, the clinician (square) bolus rate, the dose limit counting every source, and Stop/Start."""

from __future__ import annotations

from fractions import Fraction

import pytest

from openinfusion.pump.alarms import AlarmCode
from openinfusion.pump.dosing import Concentration
from openinfusion.pump.eventlog import EventKind, decode_quantity
from openinfusion.pump.pca import PcaProgram
from openinfusion.pump.programs import Bolus
from openinfusion.pump.statechart import ChannelState
from openinfusion.sim.params import BatteryParams, VirtualPumpConfig
from openinfusion.sim.run import WATCHDOG_WINDOW
from openinfusion.units import Duration, FlowRate, Quantity, Volume

from rig import Rig

MG_PER_ML = Concentration.from_quantity(Quantity.parse("1 mg/mL"))


def pca(rig: Rig, **overrides: object) -> PcaProgram:
    fields: dict[str, object] = {
        "concentration": MG_PER_ML,
        "demand_dose": Quantity.parse("1 mg"),
        "lockout": Duration.min(10),
        "basal": Quantity.parse("2 mg/h"),
        "demand_rate": FlowRate.ml_h(60),
        "limits": rig.limits(),
    }
    return PcaProgram(**(fields | overrides))  # type: ignore[arg-type]


def started(**overrides: object) -> Rig:
    rig = Rig()
    rig.pump.program(0, pca(rig, **overrides))
    rig.pump.start(0)
    rig.run_for(Duration.min(5))
    return rig


def rates_ml_h(rig: Rig) -> list[Fraction]:
    return [Quantity.parse(f"{r['value']} {r['unit']}").in_("mL/h") for r in
            (e.data["rate"] for e in rig.events(EventKind.RATE_CHANGED, 0))]  # type: ignore[index]  # fmt: skip


def ml(v: Volume) -> float:
    return v.nl / 1e6


@pytest.mark.req("OPENPCA-R5-2-0-2")
def test_a_patient_bolus_runs_on_top_of_the_basal() -> None:
    rig = started()
    before = rig.delivered()
    rig.pump.pca_demand(0)
    rig.run_for(Duration.min(10))
    assert rates_ml_h(rig)[-2:] == [62, 2]  # 60 mL/h demand plus the 2 mL/h basal, then the basal alone
    # Over those 10 min: the 1 mL demand and 10 min of basal (1/3 mL), nothing of the basal skipped.
    assert ml(rig.delivered() - before) == pytest.approx(1 + 2 / 6, abs=0.01)


@pytest.mark.req("OPENPCA-R5-3-0-2")
def test_a_clinician_bolus_runs_at_its_own_rate_plus_the_basal() -> None:
    rig = started()
    before = rig.delivered()
    bolus = Bolus.request(Volume.ml(3), Duration.min(30), rig.limits())  # 6 mL/h square bolus
    rig.pump.bolus(0, bolus)
    rig.run_for(Duration.min(31))
    assert rates_ml_h(rig)[-2:] == [8, 2]  # min(VTBI/duration + basal, Fmax) = 6 + 2 for 30 min, then basal
    # The bolus, and the basal that kept running (30 min alongside it, then 1 min alone).
    assert ml(rig.delivered() - before) == pytest.approx(3 + 1 + 2 / 60, abs=0.02)


@pytest.mark.req("OPENPCA-R5-3-0-2")
def test_a_clinician_bolus_is_capped_at_the_maximum_rate() -> None:
    rig = started(basal=Quantity.parse("100 mg/h"), demand_rate=FlowRate.ml_h(60), limit_1h=None)
    bolus = Bolus.request(Volume.ml(10), FlowRate.ml_h(1150), rig.limits())
    rig.pump.bolus(0, bolus)
    rig.run_for(Duration.s(5))
    assert rates_ml_h(rig)[-1] == rig.limits().max_rate.nl_per_h / 1_000_000  # Fmax


@pytest.mark.req("OPENPCA-R5-2-0-5")
def test_reaching_the_dose_limit_by_basal_raises_the_max_dose_warning_and_drops_to_kvo() -> None:
    # 4 mg/h basal against a 5 mg 1-hour limit: a demand (1 mg) and the basal reach it within the hour.
    rig = started(basal=Quantity.parse("3 mg/h"), limit_1h=Quantity.parse("4 mg"))
    rig.pump.pca_demand(0)
    rig.run_for(Duration.min(60))
    (warning,) = rig.raised(AlarmCode.MAX_DOSE)
    assert warning.data["priority"] == "low"
    assert rates_ml_h(rig)[-1] == 1  # the KVO rate (1 mL/h on an LVP), not the basal
    # Everything counted: never more than the limit in any hour, basal included.
    assert ml(rig.delivered()) <= 4 + 3 * 5 / 60 + 0.05  # the limit, plus the 5 min of basal before the demand
    assert rig.pump.channels[0].state is ChannelState.INFUSING  # KVO keeps the vein open (R5.1.0(5))


@pytest.mark.req("OPENPCA-R6-5-0-3")
def test_stop_then_start_resumes_the_basal_and_drops_the_rest_of_a_bolus() -> None:
    rig = started()
    rig.pump.pca_demand(0)
    rig.run_for(Duration.s(20))  # a third of the 1 mL demand (60 s at 60 mL/h)
    rig.pump.pause(0)
    rig.run_for(Duration.min(1))
    rig.pump.resume(0)
    rig.run_for(Duration.s(5))
    assert rates_ml_h(rig)[-1] == 2  # the basal, not the rest of the demand
    given = [e for e in rig.events(EventKind.BOLUS_COMPLETED, 0) + rig.events(EventKind.INFUSION_STOPPED, 0)]
    assert given  # the interrupted demand is ended in the log
    stopped = [e for e in rig.events(EventKind.INFUSION_STOPPED, 0) if "dropped" in e.data]
    assert stopped and ml(Volume.of(decode_quantity(stopped[0].data["dropped"]))) > 0.5


@pytest.mark.req("OPENPCA-R5-2-0-5")
def test_a_pca_runs_at_kvo_while_the_low_battery_warning_is_in_effect() -> None:
    world = VirtualPumpConfig(watchdog_window=WATCHDOG_WINDOW, on_mains=False,
                              battery=BatteryParams(initial_charge_fraction=0.12))  # fmt: skip
    rig = Rig(world=world)
    rig.pump.program(0, pca(rig))
    rig.pump.start(0)
    rig.run_for(Duration.min(30))
    assert rig.raised(AlarmCode.BATTERY_LOW)
    assert rates_ml_h(rig)[-1] == 1  # Table 4: low-battery warning, pump rate KVO (not the 2 mL/h basal)
    rig.world.set_mains(True)
    rig.run_for(Duration.min(6))
    assert rates_ml_h(rig)[-1] == 2  # the basal again once the warning has ended
    # The independent monitor was told of the hold (it may only lower what it allows): no false trip.
    assert not rig.raised(AlarmCode.DELIVERY_ACCURACY)
    assert rig.pump.channels[0].state is ChannelState.INFUSING
