"""The open drug library (DERS): model, validation, YAML and CSV authoring, signed packages, diff.

* :mod:`.model`: frozen value objects (``Library``, ``CareArea``, ``Drug``, ``Entry``, ``Bounds``);
* :mod:`.validate`: ``validate_data`` collects every finding; ``check_library`` holds the rules;
* :mod:`.yamlio`, :mod:`.csvio`: read and write the two authoring forms, losslessly;
* :mod:`.package`: compile, sign and verify Ed25519-signed, content-hashed packages (``load_package``);
* :mod:`.diff`: what changed between two versions, for the reviewing pharmacist.

The format and the rules are documented in ``docs/drug-library.md``.
"""
