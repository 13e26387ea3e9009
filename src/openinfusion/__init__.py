"""openinfusion: an open, software-defined smart infusion pump platform."""

__version__ = "0.1.0"
