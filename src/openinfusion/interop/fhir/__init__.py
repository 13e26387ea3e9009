"""FHIR R4 for pumps: resources from the event log and status, MedicationRequest in, the R4 JSON Schema."""
