"""Fixtures of the hospital-side tests (see tests/hospitalkit.py)."""

from hospitalkit import pg_url, station, system

__all__ = ["pg_url", "station", "system"]
