"""Faithful simulators of the supported spectrometers: byte-level state machines behind a serial line."""
