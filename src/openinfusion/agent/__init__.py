"""The pump agent: the pump's communication processor and its link to the hospital server.

The agent sits beside the pure core: it reads the core's event log and status, publishes them, and turns
the server's commands into the same guarded clinician actions a person at the pump would take, only after
a clinician confirms them at the pump. The core never waits on it or on the network.
"""
