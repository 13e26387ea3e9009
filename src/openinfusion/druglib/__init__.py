"""The open drug library (DERS): model, validation, YAML and CSV authoring, signed packages, diff.

This is the lowest domain layer: it imports only :mod:`openinfusion.units` and :mod:`openinfusion.errors`
(an import contract says so). The pump reads packages through it; analytics over pump logs live in
:mod:`openinfusion.pharmacy`.

* :mod:`.model`: frozen value objects (``Library``, ``CareArea``, ``Drug``, ``Entry``, ``Bounds``);
* :mod:`.validate`: ``validate_data`` collects every finding, from :mod:`.schema` (the document's shape and
  building the objects) and :mod:`.rules` (``check_library``, the rules over objects);
* :mod:`.yamlio`, :mod:`.csvio`: read and write the two authoring forms, losslessly;
* :mod:`.package`: compile, sign and verify Ed25519-signed, content-hashed packages (``load_package``);
* :mod:`.diff`: what changed between two versions, for the reviewing pharmacist.

The format and the rules are documented in ``docs/drug-library.md``.
"""
