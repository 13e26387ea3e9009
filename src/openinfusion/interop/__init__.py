"""EHR and device interoperability: IHE PCD over HL7 v2.6 and MLLP, FHIR R4, IEEE 11073 SDC.

Layer: above ``agent`` and below ``server`` (ARCHITECTURE.md). It reads pumps only through the small
protocols of :mod:`openinfusion.interop.gateway` (deliver an order as PENDING; read event logs and
status), so the server can wire them to its remote programming and event store. The in-memory
implementation, :class:`openinfusion.interop.ward.VirtualWard`, runs real virtual pumps from
:mod:`openinfusion.sim`.

* ``hl7/``: parsing (python-hl7), structure validation (hl7apy, behind :mod:`.hl7.structure`), the
  PCD-03 order, acknowledgements, PCD-01/04/10 builders and the PCD-05 reader.
* ``mllp.py``: MLLP framing over asyncio (python-hl7 streams), optional TLS.
* ``fhir/``: R4 resources from the event log, MedicationRequest in, the JSON Schema check, a router.
* ``sdc/``: a virtual pump as an IEEE 11073 SDC provider (sdc11073).

See docs/interop.md.
"""
