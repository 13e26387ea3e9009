"""The hospital side: device registry, fleet state, event store, alarm forwarding, library distribution,
remote orders, users and roles, and the audit trail. Stateless apart from the database.

Domain modules (fleet, events, alarms, library, orders, audit, auth) take a SQLAlchemy session and
import no web framework; :mod:`.app` and :mod:`.api` are the thin HTTP edge.
"""
