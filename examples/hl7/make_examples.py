"""Regenerate the sample messages in this folder (and the FHIR resources in ../fhir) from a scripted ward.

Run: ``.venv/bin/python examples/hl7/make_examples.py`` (pcd05-ora-r41-delivered.hl7 is written by hand:
it is what an Alert Manager sends us).

Every sample is produced by the gateway's own code on virtual pumps, so they are what openinfusion sends.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1] / "tests" / "interop"))

from samples import PUMP, library, rgv, ward  # noqa: E402

from openinfusion.interop.fhir.resources import (  # noqa: E402
    device_metrics,
    devices,
    medication_administrations,
    observations,
)
from openinfusion.interop.hl7.pcd01 import Pcd01Reporter  # noqa: E402
from openinfusion.interop.hl7.pcd04 import Pcd04Reporter  # noqa: E402
from openinfusion.interop.hl7.pcd10 import Pcd10Reporter  # noqa: E402
from openinfusion.interop.hl7.receiver import Receiver  # noqa: E402
from openinfusion.interop.hl7.writer import Sender  # noqa: E402
from openinfusion.interop.ward import Confirmation  # noqa: E402
from openinfusion.pump.alarms import AlarmCode  # noqa: E402
from openinfusion.units import Duration  # noqa: E402

FLUID = {"RXG-4": "^maintenance IV fluid^", "RXG-5": "10", "RXG-15": "100", "RXG-16": "mL/h^mL/h^UCUM",
         "RXG-17": "", "RXG-18": "", "RXG-23": "", "RXG-24": "", "ORC-2": "ORD-1002^BCMA",
         "MSH-10": "MSG00002"}  # fmt: skip


DEMO_WARD = {"MSH-10": "MSG00010", "MSH-15": "", "MSH-16": "", "ORC-2": "ORD-DEMO-1^BCMA",
             "PID-3": "MRN-0001^^^Hospital^MR", "OBX1-18": "vp-0001/1^^08002FFFE0000001^EUI-64"}  # fmt: skip
# for `openinfusion ward`'s first bed; send with `openinfusion hl7 send FILE --to 127.0.0.1:2575 --now`


def write(name: str, text: str) -> None:
    (HERE / name).write_bytes(text.replace("\r", "\n").encode())


def main() -> None:
    w = ward(library())
    sender = Sender(clock=w.now)
    receiver = Receiver(w, sender)
    write("pcd03-rgv-o15-fluid.hl7", rgv(FLUID))
    answer = receiver.receive(rgv())
    write("ack-o15-ca.hl7", answer.commit or "")
    write("rrg-o16-aa.hl7", answer.application or "")
    refused = receiver.receive(rgv({"RXG-4": "9999^unobtainium^LOCAL", "MSH-10": "MSG00009"}))
    write("rrg-o16-ae-drug-not-in-library.hl7", refused.application or "")
    record = w.pending(PUMP, 1)
    assert record is not None
    w.confirm(PUMP, 1, Confirmation("NURSE01", "MRN12345", record.drug, record.rate, record.dose))
    w.advance(Duration.min(10))
    w.pump(PUMP).pause(0)
    pcd10 = Pcd10Reporter(w, sender).poll()
    write("pcd10-oru-r42-delivery-start.hl7", pcd10[0].text)
    write("pcd10-oru-r42-delivery-stop.hl7", pcd10[1].text)
    status = w.status(PUMP)
    fhir = {
        "device.json": devices(status),
        "devicemetric.json": device_metrics(status),
        "observation.json": observations(status),
        "medicationadministration.json": medication_administrations(w, PUMP),
    }
    for name, resources in fhir.items():
        text = json.dumps(resources, indent=2, default=str, ensure_ascii=False) + "\n"
        (HERE.parent / "fhir" / name).write_text(text, encoding="utf-8")
    w.pump(PUMP).resume(0)
    write("pcd01-oru-r01-status.hl7", Pcd01Reporter(w, sender).due(w.now())[0][1])
    w.hardware(PUMP).channel(0).set_occlusion("downstream", True)
    w.advance(Duration.min(5))
    w.hardware(PUMP).channel(0).set_occlusion("downstream", False)
    w.advance(Duration.min(1))
    w.pump(PUMP).reset_alarm(0, AlarmCode.OCCLUSION_DOWNSTREAM)
    alerts = [r for r in Pcd04Reporter(w, sender).poll() if r.kind.startswith("occlusion")]
    write("pcd04-oru-r40-occlusion-start.hl7", alerts[0].text)
    write("pcd04-oru-r40-occlusion-end.hl7", alerts[-1].text)
    status_report = receiver.receive((HERE / "pcd05-ora-r41-delivered.hl7").read_text().replace("\n", "\r"))
    write("ack-r41-aa.hl7", status_report.application or status_report.commit or "")
    write("pcd03-rgv-o15-demo-ward.hl7", rgv(DEMO_WARD))
    write("bad-version-2.3.hl7", rgv({"MSH-12": "2.3"}))
    write("bad-unit-U.hl7", rgv({"RXG-16": "U/h^U/h^UCUM"}))
    write("bad-drug-not-in-library.hl7", rgv({"RXG-4": "9999^unobtainium^LOCAL"}))
    write("bad-no-msh.hl7", rgv(drop=("MSH",)))


if __name__ == "__main__":
    main()
