"""Campaign finding CF-6 replays with the air sensor fault (OI-SAFE-10): a silent detector failure is caught."""

import json
from pathlib import Path

import pytest

from openinfusion.lab.campaign.replay import replay

ROOT = Path(__file__).resolve().parents[3]
CASE = ROOT / "safety/cases/campaign-10k-run-2890.json"
FAILED_AT_US = 1_271_400_000  # the case's silent air-detector failure, 1271.4 s


@pytest.mark.req("OI-SAFE-10", "UMN-GPCA-REQ-21")
def test_cf6_the_silently_failed_detector_alarms_within_a_second_and_nothing_is_violated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)  # the case names its library relative to the repository
    verdict = replay(CASE, tmp_path)
    assert verdict["draw_matches_case"]
    assert verdict["violations_now"] == [], "the 0.63 mL bubble no longer reaches the patient unannounced"
    events = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    faults = [e for e in events if e.get("kind") == "alarm_raised" and e["data"]["code"] == "air_sensor_fault"]
    assert faults, "the air sensor fault was raised"
    assert FAILED_AT_US < faults[0]["t_us"] <= FAILED_AT_US + 1_000_000
    assert faults[0]["data"]["stops_delivery"] and faults[0]["data"]["priority"] == "high"
