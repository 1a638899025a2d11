"""The measurement service: one spectrometer, one model, one durable record, and the triggers around it.

Configuration (:mod:`~device.service.config`), the service itself (:mod:`~device.service.measurement`), the
record (:mod:`~device.service.record`), the control-port protocol, the runner with its triggers and systemd
integration, the atomic model update and the installation on a board.
"""
