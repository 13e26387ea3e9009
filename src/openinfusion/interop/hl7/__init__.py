"""HL7 v2.6 for IHE PCD: parse, validate, map orders, build acknowledgements and device reports."""
