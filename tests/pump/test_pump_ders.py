"""Dose error reduction enforced at the pump, end to end on virtual hardware (issue 5, item 5)."""

import dataclasses
import functools
from pathlib import Path

import numpy as np
import pytest

from druglib_helpers import RELEASED, TRUSTED, release
from openinfusion.druglib.model import Library, LimitField
from openinfusion.druglib.package import compile_package, generate_private_key
from openinfusion.druglib.yamlio import read_yaml
from openinfusion.errors import DoseLimitError, ProgramError, TransitionRefusedError, UnitError
from openinfusion.pump.channel import ChannelSettings
from openinfusion.pump.ders import DersIndex, LibraryEventKind, Verdict
from openinfusion.pump.dosing import Concentration, Patient
from openinfusion.pump.eventlog import EventKind, encode_quantity
from openinfusion.pump.library import LibrarySelection, request_for
from openinfusion.pump.programs import (
    Bolus,
    ContinuousProgram,
    DoseProgram,
    IntermittentProgram,
    KvoSettings,
    Program,
    RateLimits,
    SecondaryProgram,
    Titration,
    VolumeOverTimeProgram,
)
from openinfusion.pump.pump import Pump, PumpConfig
from openinfusion.pump.statechart import ChannelState
from openinfusion.sim.driver import Driver
from openinfusion.sim.params import VirtualPumpConfig
from openinfusion.sim.run import WATCHDOG_WINDOW
from openinfusion.sim.virtual_pump import VirtualPump
from openinfusion.units import ZERO_RATE, Duration, FlowRate, Quantity, Volume

from rig import KVO

SAMPLE = Path(__file__).resolve().parents[2] / "examples" / "library" / "example-library.yaml"
NOREPI = LibrarySelection(area="PICU", drug="norepinephrine", concentration="8 mg/500 mL")
CHILD = Patient(weight=Quantity.of(20, "kg"))
REASON = "Dose verified with prescriber's order"


@functools.cache
def library() -> Library:
    return read_yaml(SAMPLE).require()


def package(version: str = "1") -> bytes:
    lib = library()
    lib = dataclasses.replace(lib, info=dataclasses.replace(lib.info, version=version))
    return release(lib)


class Bench:
    """A one-channel LVP in the PICU with the example library installed."""

    def __init__(self, kvo: KvoSettings = KVO) -> None:
        self.world = VirtualPump(VirtualPumpConfig(watchdog_window=WATCHDOG_WINDOW), np.random.default_rng(2))
        config = PumpConfig(channels=(ChannelSettings(kvo=kvo),), care_area="PICU")
        self.pump = Pump(
            self.world.hardware, self.world.calibrations, config,
            trusted_keys=TRUSTED, library_package=package("1"),
        )  # fmt: skip
        self.driver = Driver(self.world, self.pump)
        self.run(Duration.s(1))
        self.limits = RateLimits.of(self.world.calibrations[0])

    def run(self, d: Duration) -> None:
        self.driver.service()
        self.driver.run_until(self.world.now + d)

    def norepi(self, ug_kg_min: str) -> DoseProgram:
        conc = Concentration(Quantity.of(8, "mg"), Quantity.of(500, "mL"))
        dose = Quantity.of(ug_kg_min, "ug/kg/min")
        return DoseProgram(dose=dose, concentration=conc, patient=CHILD, vtbi=None, limits=self.limits)

    def kinds(self, kind: EventKind) -> list[dict[str, object]]:
        return [dict(e.data) for e in self.pump.log.events() if e.kind is kind]


@pytest.mark.req("OI-DERS-3", "OI-DERS-5")
def test_soft_limit_needs_an_override_with_a_listed_reason() -> None:
    b = Bench()
    with pytest.raises(DoseLimitError, match="override with a reason needed") as err:
        b.pump.program(0, b.norepi("0.2"), selection=NOREPI, patient=CHILD)
    assert err.value.where == "program.dose"
    assert b.pump.channels[0].state is not ChannelState.READY
    with pytest.raises(DoseLimitError, match="not in the library's list"):
        b.pump.program(0, b.norepi("0.2"), selection=NOREPI, patient=CHILD, override_reason="because")
    b.pump.program(0, b.norepi("0.2"), selection=NOREPI, patient=CHILD, override_reason=REASON)
    assert b.pump.channels[0].state is ChannelState.READY
    checks = b.kinds(EventKind.DERS_CHECK)
    assert [c["outcome"] for c in checks] == ["needs_override", "needs_override", "proceed"]
    assert checks[-1]["after_alert"] is True  # an edit after an alert is visible to pharmacy
    override = b.kinds(EventKind.DERS_OVERRIDE)
    assert override and override[0]["reason"] == REASON
    assert checks[0]["library"]["hash"] == b.pump.library_identity.hash  # type: ignore[index,union-attr]


@pytest.mark.req("OI-DERS-3")
def test_hard_limit_blocks_even_with_an_override() -> None:
    b = Bench()
    with pytest.raises(DoseLimitError, match="hard limit") as err:
        b.pump.program(0, b.norepi("3"), selection=NOREPI, patient=CHILD, override_reason=REASON)
    assert "2 ug/kg/min" in err.value.why  # the limit is shown
    assert b.kinds(EventKind.DERS_CHECK)[0]["outcome"] == "blocked"
    b.pump.cancel_programming(0)
    assert b.kinds(EventKind.DERS_CANCEL), "cancel after an alert is logged as an averted error"


@pytest.mark.req("OI-DERS-4", "OI-PROG-9")
def test_titration_past_a_limit_is_caught_and_the_old_rate_continues() -> None:
    b = Bench()
    b.pump.program(0, b.norepi("0.08"), selection=NOREPI, patient=CHILD)
    b.pump.start(0)
    b.run(Duration.min(2))
    rate = b.pump.channels[0].rate()
    with pytest.raises(DoseLimitError):
        b.pump.titrate(0, Titration(Quantity.of("0.15", "ug/kg/min")))
    assert b.pump.channels[0].rate() == rate
    b.pump.titrate(0, Titration(Quantity.of("0.15", "ug/kg/min")), override_reason="Titration per protocol")
    b.pump.confirm_titration(0)
    assert b.pump.channels[0].rate() > rate
    assert [c["action"] for c in b.kinds(EventKind.DERS_CHECK)] == ["program", "titration", "titration"]


@pytest.mark.req("OI-DERS-2", "OI-DERS-5")
def test_tampered_or_unsigned_package_is_refused_and_the_active_library_stays() -> None:
    b = Bench()
    before = b.pump.library_identity
    good = package("2")
    tampered = good.replace(b"norepinephrine", b"norepinephrinf", 1)
    unsigned = compile_package(library(), RELEASED)
    for bad in (tampered, unsigned):
        event = b.pump.receive_library(bad)
        assert event.kind is LibraryEventKind.REJECTED and event.reason
    assert b.pump.library_identity == before
    assert len(b.kinds(EventKind.LIBRARY_REJECTED)) == 2
    other_key = release(library(), author=("C. Stranger", generate_private_key()))
    assert b.pump.receive_library(other_key).kind is LibraryEventKind.REJECTED


@pytest.mark.req("OI-DERS-6")
def test_new_library_waits_until_the_running_infusion_ends() -> None:
    b = Bench()
    b.pump.program(0, b.norepi("0.08"), selection=NOREPI, patient=CHILD)
    b.pump.start(0)
    event = b.pump.receive_library(package("2"))
    assert event.kind is LibraryEventKind.STAGED
    b.run(Duration.min(5))
    assert b.pump.library_identity is not None and b.pump.library_identity.version == "1"
    b.pump.pause(0)
    b.pump.clear(0)
    b.run(Duration.s(1))
    assert b.pump.library_identity.version == "2"
    assert b.kinds(EventKind.LIBRARY_ACTIVATED)


@pytest.mark.req("OI-DERS-3")
def test_basic_infusion_needs_a_reason_and_is_logged() -> None:
    b = Bench()
    program = ContinuousProgram(rate=FlowRate.ml_h(10), vtbi=Volume.ml(100), limits=b.limits)
    with pytest.raises(ProgramError, match="needs a reason"):
        b.pump.program(0, program)
    b.pump.program(0, program, basic_reason="Maintenance fluid, not in library")
    assert b.kinds(EventKind.BASIC_INFUSION)[0]["reason"] == "Maintenance fluid, not in library"


@pytest.mark.req("OI-UNIT-1", "OI-DERS-3")
def test_a_program_for_another_bag_is_refused_not_checked_against_the_wrong_limits() -> None:
    b = Bench()
    wrong = LibrarySelection(area="PICU", drug="norepinephrine", concentration="4 mg/250 mL")
    with pytest.raises(ProgramError, match="not the selected library concentration"):
        b.pump.program(0, b.norepi("0.08"), selection=wrong, patient=CHILD)


@pytest.mark.req("OI-DERS-6", "OI-ALM-10")
def test_pump_settings_follow_the_care_area_of_the_active_library() -> None:
    b = Bench()
    area = next(a for a in library().care_areas if a.id == "PICU")
    ch = b.pump.channels[0]
    assert ch.settings.sensitivity.value == area.occlusion.value
    assert ch.settings.callback == Duration.of(area.callback)
    assert ch.air.single_limit == Volume.of(area.air_in_line)


@pytest.mark.req("OI-DERS-6")
def test_a_staged_library_waits_while_a_completed_program_is_still_on_the_channel() -> None:
    b = Bench(KvoSettings(enabled=False, rate=ZERO_RATE))  # the channel stops, COMPLETE, at the end
    vtbi = VolumeOverTimeProgram(vtbi=Volume.ml(1), duration=Duration.min(2), limits=b.limits)
    b.pump.program(0, vtbi, basic_reason="not in the library")
    b.pump.start(0)
    b.run(Duration.min(3))
    assert b.pump.channels[0].state is ChannelState.COMPLETE
    assert b.pump.receive_library(package("2")).kind is LibraryEventKind.STAGED
    b.run(Duration.min(5))  # services run normally: no exception, the monitor and the watchdog keep going
    assert b.pump.library_identity is not None and b.pump.library_identity.version == "1"
    assert not b.kinds(EventKind.LIBRARY_ACTIVATED)
    b.pump.clear(0)
    b.run(Duration.s(1))
    assert b.pump.library_identity.version == "2"


@pytest.mark.req("OI-DERS-3")
def test_a_titration_during_a_secondary_is_checked_against_the_secondary_not_the_primary() -> None:
    b = Bench()
    b.pump.program(0, b.norepi("0.08"), selection=NOREPI, patient=CHILD)
    b.pump.start(0)
    b.run(Duration.min(1))
    antibiotic = SecondaryProgram(rate=FlowRate.ml_h(100), vtbi=Volume.ml(50), limits=b.limits)
    b.pump.secondary(0, antibiotic, basic_reason="antibiotic not in the library")
    checks_before = len(b.kinds(EventKind.DERS_CHECK))
    b.pump.titrate(0, Titration(FlowRate.ml_h(150)))
    assert len(b.kinds(EventKind.DERS_CHECK)) == checks_before  # not judged as norepinephrine in the PICU


@pytest.mark.req("OI-PROG-5")
def test_a_clinician_bolus_during_a_secondary_is_refused_with_a_reason() -> None:
    b = Bench()
    b.pump.program(0, ContinuousProgram(rate=FlowRate.ml_h(50), vtbi=Volume.ml(10), limits=b.limits),
                   basic_reason="fluids")  # fmt: skip
    b.pump.start(0)
    b.run(Duration.min(1))
    antibiotic = SecondaryProgram(rate=FlowRate.ml_h(100), vtbi=Volume.ml(10), limits=b.limits)
    b.pump.secondary(0, antibiotic, basic_reason="antibiotic not in the library")
    with pytest.raises(TransitionRefusedError, match="secondary"):
        b.pump.bolus(0, Bolus.request(Volume.ml(2), Duration.min(1), b.limits))
    (refused,) = b.kinds(EventKind.EVENT_REFUSED)
    assert refused["event"] == "bolus"
    b.run(Duration.min(30))  # the secondary (6 min) and the primary's rest: each container gives what it holds
    counters = b.pump.channels[0].live_counters()
    assert counters.delivered.nl == pytest.approx(10e6, abs=0.01e6)  # each within a step of what it holds
    assert counters.secondary.nl == pytest.approx(10e6, abs=0.01e6)


PARACETAMOL = LibrarySelection(area="PICU", drug="acetaminophen", concentration="1000 mg/100 mL")  # 10 mg/mL


def paracetamol(b: Bench, ml: int) -> VolumeOverTimeProgram:
    """``ml`` of the 10 mg/mL bag over 20 min: 10 x ``ml`` mg, i.e. ``ml``/2 mg/kg for the 20 kg child."""
    return VolumeOverTimeProgram(vtbi=Volume.ml(ml), duration=Duration.min(20), limits=b.limits)


@pytest.mark.req("OI-DERS-3", "OI-DERS-5")
def test_the_dose_a_volume_over_time_program_gives_is_checked_against_the_entrys_dose_limits() -> None:
    # PICU acetaminophen, an intermittent dose: soft minimum 7 mg/kg, hard maximum 16 mg/kg; rate, duration
    # and volume of every program below are within their limits, only the dose differs.
    b = Bench()
    with pytest.raises(DoseLimitError, match="hard limit") as err:
        b.pump.program(0, paracetamol(b, 40), selection=PARACETAMOL, patient=CHILD, override_reason=REASON)
    assert err.value.where == "program.dose" and "16 mg/kg" in err.value.why  # 400 mg = 20 mg/kg, blocked
    b.pump.cancel_programming(0)
    with pytest.raises(DoseLimitError, match="override with a reason needed") as err:
        b.pump.program(0, paracetamol(b, 10), selection=PARACETAMOL, patient=CHILD)  # 100 mg = 5 mg/kg
    assert err.value.where == "program.dose" and "7 mg/kg" in err.value.why
    b.pump.program(0, paracetamol(b, 10), selection=PARACETAMOL, patient=CHILD, override_reason=REASON)
    assert b.pump.channels[0].state is ChannelState.READY
    b.pump.clear(0)
    b.pump.program(0, paracetamol(b, 30), selection=PARACETAMOL, patient=CHILD)  # 300 mg = 15 mg/kg
    assert b.pump.channels[0].state is ChannelState.READY
    checks = b.kinds(EventKind.DERS_CHECK)
    assert [c["outcome"] for c in checks] == ["blocked", "needs_override", "proceed", "proceed"]
    doses = [c["values"]["dose"] for c in checks]  # type: ignore[index]
    assert doses == [{"value": v, "unit": "mg/kg"} for v in ("20", "5", "5", "15")]
    (finding,) = checks[0]["findings"]  # type: ignore[misc]
    assert finding == {
        "field": "dose", "kind": "hard", "bound": "upper",
        "entered": {"value": "20", "unit": "mg/kg"}, "limit": {"value": "16", "unit": "mg/kg"},
    }  # fmt: skip
    (override,) = b.kinds(EventKind.DERS_OVERRIDE)
    assert override["reason"] == REASON and override["findings"][0]["field"] == "dose"  # type: ignore[index]


@pytest.mark.req("OI-DERS-3")
@pytest.mark.parametrize(
    ("ml", "intermittent", "dose", "verdict"),
    [
        (100, False, "20 meq", Verdict.OK),  # examples/scenarios/potassium_meq.yaml
        (1000, False, "200 meq", Verdict.HARD),  # hard maximum 41 meq
        (20, False, "4 meq", Verdict.SOFT),  # soft minimum 5 meq
        (250, True, "50 meq", Verdict.HARD),  # each intermittent dose is one dose
    ],
)
def test_the_dose_of_an_intermittent_entrys_program_is_the_amount_in_its_volume(
    ml: int, intermittent: bool, dose: str, verdict: Verdict
) -> None:
    index = DersIndex.build(library())
    selection = LibrarySelection(
        area="ADULT-ICU", drug="potassium-chloride", therapy="central", concentration="20 meq/100 mL"
    )
    limits = RateLimits(min_rate=FlowRate.ml_h("0.1"), max_rate=FlowRate.ml_h(999), resolution=FlowRate.ml_h("0.1"))
    program: Program = (
        IntermittentProgram(
            dose_volume=Volume.ml(ml), rate=FlowRate.ml_h(50), interval=Duration.h(24), doses=2, limits=limits
        )
        if intermittent
        else VolumeOverTimeProgram(vtbi=Volume.ml(ml), duration=Duration.h(2), limits=limits)
    )
    request = request_for(selection, program, None, index)
    result = index.check(request)
    assert request.dose == Quantity.parse(dose)
    assert result.verdict is verdict
    assert all(f.field is LimitField.DOSE for f in result.findings)


def picu_potassium(per_ml: str) -> LibrarySelection:
    """PICU potassium chloride: custom concentrations only (soft 0.05-0.2 meq/mL, hard minimum 0.04 meq/mL)."""
    return LibrarySelection(area="PICU", drug="potassium-chloride", custom_concentration=Quantity.parse(per_ml))


@pytest.mark.req("OI-DERS-3", "OI-DERS-5")
@pytest.mark.parametrize(
    ("per_ml", "ml", "verdict", "finding"),
    [
        ("0.1 meq/mL", 100, Verdict.OK, None),  # 10 meq = 0.5 meq/kg
        ("0.3 meq/mL", 50, Verdict.SOFT, (LimitField.CONCENTRATION, "0.3 meq/mL")),  # 15 meq = 0.75 meq/kg
        ("0.03 meq/mL", 200, Verdict.HARD, (LimitField.CONCENTRATION, "0.03 meq/mL")),  # 6 meq = 0.3 meq/kg
        ("0.2 meq/mL", 300, Verdict.HARD, (LimitField.DOSE, "3 meq/kg")),  # 60 meq: hard maximum 2.5 meq/kg
    ],
)
def test_a_program_names_a_custom_concentration_and_is_checked_at_it(
    per_ml: str, ml: int, verdict: Verdict, finding: tuple[LimitField, str] | None
) -> None:
    b = Bench()
    program = VolumeOverTimeProgram(vtbi=Volume.ml(ml), duration=Duration.h(4), limits=b.limits)
    if verdict is Verdict.OK:
        b.pump.program(0, program, selection=picu_potassium(per_ml), patient=CHILD)
    else:
        with pytest.raises(DoseLimitError):
            b.pump.program(0, program, selection=picu_potassium(per_ml), patient=CHILD)
    (check,) = b.kinds(EventKind.DERS_CHECK)
    assert check["verdict"] == verdict.name.lower()
    assert check["values"]["custom_concentration"] == encode_quantity(Quantity.parse(per_ml))  # type: ignore[index]
    assert check["selection"]["concentration"] is None  # type: ignore[index]
    found = [(f["field"], f["entered"]) for f in check["findings"]]  # type: ignore[attr-defined,index]
    assert found == ([] if finding is None else [(finding[0].value, encode_quantity(Quantity.parse(finding[1])))])


@pytest.mark.req("OI-DERS-3", "OI-UNIT-1")
def test_a_custom_concentration_is_refused_where_the_entry_allows_none_or_the_program_mixes_another() -> None:
    index = DersIndex.build(library())
    b = Bench()
    icu = LibrarySelection(
        area="ADULT-ICU",
        drug="potassium-chloride",
        therapy="central",
        custom_concentration=Quantity.parse("0.2 meq/mL"),
    )
    bag = VolumeOverTimeProgram(vtbi=Volume.ml(100), duration=Duration.h(2), limits=b.limits)
    with pytest.raises(ProgramError, match="custom concentrations are not allowed"):
        index.check(request_for(icu, bag, None, index))
    with pytest.raises(ProgramError, match="not both"):
        LibrarySelection(
            area="PICU", drug="x", concentration="8 mg/500 mL", custom_concentration=Quantity.parse("1 mg/mL")
        )
    with pytest.raises(UnitError, match="amount/volume"):
        LibrarySelection(area="PICU", drug="x", custom_concentration=Quantity.parse("1 mg"))
    custom = LibrarySelection(area="PICU", drug="norepinephrine", custom_concentration=Quantity.parse("32 ug/mL"))
    with pytest.raises(ProgramError, match="not the selected custom concentration"):
        request_for(custom, b.norepi("0.08"), CHILD, index)  # its bag is 8 mg/500 mL = 16 ug/mL
