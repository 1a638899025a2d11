"""pyserial URL handlers of the firmware bridge: ``sim://`` serves a simulated spectrometer.

Register with ``serial.protocol_handler_packages.append("firmware_bridge.urlhandler")`` (done by
:func:`firmware_bridge.sim.serve.register`), then ``serial.serial_for_url("sim://obp?seed=1")``.
"""
