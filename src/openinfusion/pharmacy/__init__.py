"""Pharmacy analytics over pump event logs: CQI, what-if replay, their reports, and the ward-week generator.

This layer sits above the simulator and the pump (layers: pharmacy > sim > pump > druglib): it reads the
pump's event log (:mod:`openinfusion.pump.eventlog`), replays checks with the pump's own DERS check
(:mod:`openinfusion.pump.ders`) and drives simulated pumps to make a ward's week of logs. Nothing below
imports it.

* :mod:`.cqi`: continuous quality improvement metrics from event logs;
* :mod:`.whatif`: replay the logged checks against a proposed library;
* :mod:`.report`: the HTML pages and CSV tables of both;
* :mod:`.ward`: a simulated ward's week of pump logs (``openinfusion ward-week``).

Definitions and their sources are in ``docs/pharmacy-analytics.md``.
"""
