"""The central side of a fleet: certificate authority, broker configuration, collector, dashboard, rollouts.

See docs/fleet.md.
"""
