"""Fault-injection campaigns: Monte Carlo over programs, patients, faults and clinicians, judged by an oracle
that reads only the simulator's physical truth (docs/campaigns.md)."""
