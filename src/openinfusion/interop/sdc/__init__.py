"""IEEE 11073 SDC: a virtual pump as an SDC provider (sdc11073), for simulation, gateways and tests only."""
