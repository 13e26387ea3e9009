"""ReqIF 1.2 export of requirements, hazards and risk controls (for DOORS, Polarion, Jama and StrictDoc users).

One specification per kind (requirements, hazards, risk controls), each object with its ID, title, text and
kind or severity as string attributes, and SPEC-RELATIONs ``satisfies`` (control -> requirement) and
``mitigates`` (control -> hazard). Identifiers are stable (derived from the model's IDs); the only date is
the one given, so the same model and date give the same bytes.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Final

from openinfusion.trace.model import SafetyModel

NS: Final = "http://www.omg.org/spec/ReqIF/20110401/reqif.xsd"
KINDS: Final = {
    "requirement": ("ID", "Title", "Text", "Kind"),
    "hazard": ("ID", "Title", "Text", "Severity"),
    "control": ("ID", "Title", "Text", "Kind"),
}


def q(tag: str) -> str:
    """``tag`` in the ReqIF namespace."""
    return f"{{{NS}}}{tag}"


def _id(kind: str, text: str) -> str:
    return f"oi-{kind}-" + "".join(c if c.isalnum() else "-" for c in text.lower())


def _el(parent: ET.Element, tag: str, date: str, ident: str, name: str | None = None, **extra: str) -> ET.Element:
    """An identifiable ReqIF element (IDENTIFIER, LAST-CHANGE, optional LONG-NAME)."""
    attrib = {"IDENTIFIER": ident, "LAST-CHANGE": date, **{k.replace("_", "-"): v for k, v in extra.items()}}
    if name is not None:
        attrib["LONG-NAME"] = name
    return ET.SubElement(parent, q(tag), attrib)


def _ref(parent: ET.Element, wrapper: str, tag: str, target: str) -> None:
    ET.SubElement(ET.SubElement(parent, q(wrapper)), q(tag)).text = target


def _rows(model: SafetyModel) -> dict[str, list[tuple[str, tuple[str, ...]]]]:
    return {
        "requirement": [(r.id, (r.id, r.title, r.text, r.kind.value)) for r in model.requirements],
        "hazard": [
            (h.id, (h.id, h.hazard, f"{'; '.join(h.causes)}. Harm: {h.harm}", h.severity.value)) for h in model.hazards
        ],
        "control": [(c.id, (c.id, c.title, c.control, c.kind.value)) for c in model.controls],
    }


def export(model: SafetyModel, date: str) -> str:
    """The ReqIF document (UTF-8 XML text); ``date`` is an ISO 8601 date-time used for every LAST-CHANGE."""
    ET.register_namespace("", NS)
    root = ET.Element(q("REQ-IF"))
    header = ET.SubElement(ET.SubElement(root, q("THE-HEADER")), q("REQ-IF-HEADER"), {"IDENTIFIER": "oi-header"})
    for tag, text in (("CREATION-TIME", date), ("REQ-IF-TOOL-ID", "openinfusion assurance"),
                      ("REQ-IF-VERSION", "1.0"), ("SOURCE-TOOL-ID", "openinfusion"),
                      ("TITLE", "openinfusion safety model")):  # fmt: skip
        ET.SubElement(header, q(tag)).text = text
    content = ET.SubElement(ET.SubElement(root, q("CORE-CONTENT")), q("REQ-IF-CONTENT"))
    _el(ET.SubElement(content, q("DATATYPES")), "DATATYPE-DEFINITION-STRING", date, "oi-dt-string", "String",
        MAX_LENGTH="100000")  # fmt: skip
    spec_types = ET.SubElement(content, q("SPEC-TYPES"))
    for kind, attrs in KINDS.items():
        defs = ET.SubElement(_el(spec_types, "SPEC-OBJECT-TYPE", date, f"oi-type-{kind}", kind.capitalize()),
                             q("SPEC-ATTRIBUTES"))  # fmt: skip
        for a in attrs:
            d = _el(defs, "ATTRIBUTE-DEFINITION-STRING", date, f"oi-attr-{kind}-{a.lower()}", a)
            _ref(d, "TYPE", "DATATYPE-DEFINITION-STRING-REF", "oi-dt-string")
    for rel in ("satisfies", "mitigates"):
        _el(spec_types, "SPEC-RELATION-TYPE", date, f"oi-reltype-{rel}", rel)
    _el(spec_types, "SPECIFICATION-TYPE", date, "oi-spectype", "Specification")
    objects = ET.SubElement(content, q("SPEC-OBJECTS"))
    rows = _rows(model)
    for kind, entries in rows.items():
        for ident, values in entries:
            obj = _el(objects, "SPEC-OBJECT", date, _id(kind, ident), ident)
            _ref(obj, "TYPE", "SPEC-OBJECT-TYPE-REF", f"oi-type-{kind}")
            vals = ET.SubElement(obj, q("VALUES"))
            for a, v in zip(KINDS[kind], values, strict=True):
                av = ET.SubElement(vals, q("ATTRIBUTE-VALUE-STRING"), {"THE-VALUE": v})
                _ref(av, "DEFINITION", "ATTRIBUTE-DEFINITION-STRING-REF", f"oi-attr-{kind}-{a.lower()}")
    relations = ET.SubElement(content, q("SPEC-RELATIONS"))
    for c in model.controls:
        pairs = [("satisfies", "requirement", r) for r in c.requirements]
        pairs += [("mitigates", "hazard", h) for h in c.mitigates]
        for rel, kind, target in pairs:
            r = _el(relations, "SPEC-RELATION", date, f"oi-rel-{rel}-{_id('control', c.id)}-{_id(kind, target)}")
            _ref(r, "TYPE", "SPEC-RELATION-TYPE-REF", f"oi-reltype-{rel}")
            _ref(r, "SOURCE", "SPEC-OBJECT-REF", _id("control", c.id))
            _ref(r, "TARGET", "SPEC-OBJECT-REF", _id(kind, target))
    specs = ET.SubElement(content, q("SPECIFICATIONS"))
    for kind, entries in rows.items():
        spec = _el(specs, "SPECIFICATION", date, f"oi-spec-{kind}", f"{kind.capitalize()}s")
        _ref(spec, "TYPE", "SPECIFICATION-TYPE-REF", "oi-spectype")
        children = ET.SubElement(spec, q("CHILDREN"))
        for ident, _ in entries:
            h = _el(children, "SPEC-HIERARCHY", date, f"oi-h-{_id(kind, ident)}")
            _ref(h, "OBJECT", "SPEC-OBJECT-REF", _id(kind, ident))
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
