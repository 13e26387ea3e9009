"""The event log is the record of truth: what each event carries for a reader that has nothing else."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from test_pump_ders import CHILD, NOREPI, REASON, Bench, package

from openinfusion.errors import DoseLimitError
from openinfusion.pump.alarms import AlarmCode
from openinfusion.pump.channel import ChannelSettings
from openinfusion.pump.eventlog import EventKind, EventLog, decode_quantity
from openinfusion.pump.programs import Bolus, KvoSettings, Titration
from openinfusion.units import ZERO_RATE, Duration, Quantity, Volume

from rig import Rig

SRC = Path(__file__).resolve().parents[2] / "src" / "openinfusion"


def ml(encoded: object) -> float:
    return Volume.of(decode_quantity(encoded)).nl / 1e6  # type: ignore[arg-type]


@pytest.mark.req("UMN-GPCA-REQ-80")
def test_an_alarm_event_carries_the_channel_state_and_the_remaining_volume() -> None:
    rig = Rig()
    rig.start("100", "50")
    rig.run_for(Duration.min(6))
    rig.world.channel(0).set_occlusion("downstream", True)
    rig.run_for(Duration.min(1))
    (raised,) = rig.raised(AlarmCode.OCCLUSION_DOWNSTREAM)
    assert raised.data["state"] == "infusing"  # the mode when the alarm came
    total = ml(raised.data["volumes"]["total"])  # type: ignore[index]
    assert total == pytest.approx(10, abs=0.5)  # 6 min at 100 mL/h, and the rise to the alarm
    assert ml(raised.data["remaining"]) == pytest.approx(50 - total, abs=1e-6)


@pytest.mark.req("UMN-GPCA-REQ-80")
def test_a_pump_wide_alarm_carries_every_channel_state() -> None:
    rig = Rig(channels=2)
    rig.start("100", channel=0)
    rig.world.set_mains(False)
    rig.run_for(Duration.s(5))
    (on_battery,) = rig.raised(AlarmCode.ON_BATTERY)
    channels = on_battery.data["channels"]
    assert [(c["channel"], c["state"]) for c in channels] == [(1, "infusing"), (2, "idle")]  # type: ignore[index]


@pytest.mark.req("OI-LOG-1")
def test_program_and_titration_events_carry_drug_dose_weight_care_area_library_and_both_rates() -> None:
    b = Bench()
    b.pump.program(0, b.norepi("0.08"), selection=NOREPI, patient=CHILD)
    b.pump.start(0)
    b.run(Duration.min(1))
    (entered,) = b.kinds(EventKind.PROGRAM_ENTERED)
    (confirmed,) = b.kinds(EventKind.PROGRAM_CONFIRMED)
    selection = confirmed["selection"]
    assert (selection["drug"], selection["care_area"]) == ("norepinephrine", "PICU")  # type: ignore[index]
    assert entered["selection"] == selection
    assert decode_quantity(confirmed["weight"]) == Quantity.of(20, "kg")  # type: ignore[arg-type]
    assert confirmed["library"]["version"] == "1"  # type: ignore[index]
    program = confirmed["program"]
    assert decode_quantity(program["dose"]) == Quantity.of("0.08", "ug/kg/min")  # type: ignore[index,arg-type]
    assert decode_quantity(program["concentration"]["amount"]) == Quantity.of(8, "mg")  # type: ignore[index,arg-type]
    (patient,) = b.kinds(EventKind.PATIENT_CHANGED)
    assert decode_quantity(patient["weight"]) == Quantity.of(20, "kg")  # type: ignore[arg-type]
    b.pump.titrate(0, Titration(Quantity.of("0.1", "ug/kg/min")))
    b.pump.confirm_titration(0)
    (pending,) = b.kinds(EventKind.TITRATION_PENDING)
    (done,) = b.kinds(EventKind.TITRATION_CONFIRMED)
    old, new = decode_quantity(done["old_rate"]), decode_quantity(done["new_rate"])  # type: ignore[arg-type]
    assert old.in_("mL/h") == 6  # 0.08 ug/kg/min x 20 kg = 96 ug/h at 16 ug/mL
    assert new.in_("mL/h") == pytest.approx(7.5)
    assert pending["new_rate"] == done["new_rate"] and done["selection"] == selection


@pytest.mark.req("OI-LOG-1")
def test_stop_and_clear_count_the_kvo_and_a_completed_program_clears_without_a_refusal() -> None:
    rig = Rig()
    rig.start("60", "1")  # 1 min, then KVO at 1 mL/h
    rig.run_for(Duration.min(31))
    rig.pump.clear(0)  # from KVO: the motor stops and the program is discarded
    stopped = rig.events(EventKind.INFUSION_STOPPED, 0)[-1]
    assert ml(stopped.data["kvo"]) == pytest.approx(0.5, abs=0.02)  # 30 min at 1 mL/h
    assert ml(stopped.data["total"]) == pytest.approx(1.5, abs=0.02)
    (cleared,) = rig.events(EventKind.PROGRAM_CLEARED, 0)
    assert cleared.data["total"] == stopped.data["total"]
    assert rig.events(EventKind.EVENT_REFUSED) == []
    off = Rig(settings=ChannelSettings(kvo=KvoSettings(enabled=False, rate=ZERO_RATE)))
    off.start("60", "1")
    off.run_for(Duration.min(2))
    off.pump.clear(0)  # COMPLETE: nothing to refuse
    assert off.events(EventKind.EVENT_REFUSED) == []


def test_bolus_completed_gives_the_bolus_volume() -> None:
    rig = Rig()
    rig.start("10")
    rig.run_for(Duration.min(1))
    rig.pump.bolus(0, Bolus.request(Volume.ml(2), Duration.min(1), rig.limits()))
    rig.run_for(Duration.min(2))
    (done,) = rig.events(EventKind.BOLUS_COMPLETED, 0)
    assert ml(done.data["volume"]) == pytest.approx(2.0, abs=0.01)


@pytest.mark.req("OI-LOG-1")
def test_channels_are_numbered_from_1_in_the_exported_log_and_read_back_as_they_were() -> None:
    rig = Rig(channels=2)
    rig.start("10", channel=1)
    rig.run_for(Duration.s(5))
    text = rig.pump.log.to_jsonl()
    rows = [json.loads(line) for line in text.splitlines()[1:]]
    assert {r["channel"] for r in rows} <= {None, 1, 2} and 2 in {r["channel"] for r in rows}
    back = EventLog.from_jsonl(text)
    assert [e.channel for e in back.events()] == [e.channel for e in rig.pump.log.events()]
    with pytest.raises(Exception, match="numbered from 1"):
        EventLog.from_jsonl(text.replace('"channel":2,', '"channel":0,', 1))


def test_every_event_kind_is_written_by_the_core_or_the_simulator() -> None:
    source = "\n".join(p.read_text(encoding="utf-8") for p in (SRC / "pump").rglob("*.py") if p.name != "eventlog.py")
    source += (SRC / "sim" / "run.py").read_text(encoding="utf-8")  # fault_injected: simulation only
    source += (SRC / "pump" / "alarms.py").read_text(encoding="utf-8")
    unused = [k.name for k in EventKind if not re.search(rf"EventKind\.{k.name}\b", source)]
    assert unused == []


# The kinds no example scenario writes; tests/sim/test_scenarios.py checks that the examples write every other one.
NOT_IN_EXAMPLES = frozenset(
    {
        EventKind.ALARM_ACKNOWLEDGED,
        EventKind.DERS_CANCEL,
        EventKind.LIBRARY_STAGED,
        EventKind.LIBRARY_ACTIVATED,
        EventKind.LIBRARY_REJECTED,
    }
)


def test_the_event_kinds_no_example_writes_are_written_by_the_pump_at_run_time() -> None:
    b = Bench()
    with pytest.raises(DoseLimitError):
        b.pump.program(0, b.norepi("3"), selection=NOREPI, patient=CHILD, override_reason=REASON)
    b.pump.cancel_programming(0)  # an averted error
    b.pump.receive_library(package("2"))  # staged; no infusion runs, so it activates
    b.run(Duration.s(1))
    b.pump.receive_library(b"{}")  # not a package: rejected
    rig = Rig()
    rig.start("25")
    rig.world.set_mains(False)
    rig.run_for(Duration.s(10))
    assert rig.pump.reset_alarm(None, AlarmCode.ON_BATTERY)  # still on battery: acknowledged, not ended
    written = {e.kind for e in (*b.pump.log.events(), *rig.pump.log.events())}
    assert written >= NOT_IN_EXAMPLES
