"""The uplink: a device's measurements and status to the fleet's MQTT broker, and signed rollouts from it.

It runs beside the measuring service as its own unit (``raman-edge-uplink``), reading the record the
service writes; the service itself keeps no network access. Topics and payloads: docs/fleet.md.
"""
