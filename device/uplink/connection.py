"""A TLS MQTT 5 client for one identity of the fleet (a device, the collector, the administrator).

Every party authenticates with its own certificate, issued by the fleet's CA (``raman-fleet pki``); the
broker takes the certificate's common name as the identity its access list names. Sessions are
persistent: the broker keeps a party's subscriptions, and what arrives for them, while it is away.
"""
from __future__ import annotations

import socket
import ssl

from device.errors import RamanEdgeError

#: How long the broker keeps a session while its client is away, s.
SESSION_EXPIRY_S = 30 * 24 * 3600


class ClientLibraryError(RamanEdgeError):
    """paho-mqtt is not installed."""


def mqtt_library():
    """The ``paho.mqtt.client`` module; ClientLibraryError naming the extra to install when it is missing."""
    try:
        import paho.mqtt.client as mqtt
    except ImportError:
        raise ClientLibraryError("the fleet's MQTT parts need paho-mqtt; install the uplink extra: "
                                 "pip install 'raman-edge[uplink]'") from None
    return mqtt


def tls_client(client_id: str, ca, certificate, key, manual_ack: bool = False):
    """A paho-mqtt 2 client (MQTT 5) authenticating with ``certificate``/``key`` and trusting only ``ca``.

    Parameters
    ----------
    client_id : str
        The session's name on the broker (persistent sessions are found again by it).
    ca, certificate, key : path-like
        The fleet CA's certificate, and this party's certificate and private key (PEM).
    manual_ack : bool
        Acknowledge received messages only when :meth:`ack` is called (after they are stored).
    """
    mqtt = mqtt_library()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5,
                         manual_ack=manual_ack)
    client.tls_set(ca_certs=str(ca), certfile=str(certificate), keyfile=str(key), tls_version=ssl.PROTOCOL_TLS_CLIENT)
    client.reconnect_delay_set(min_delay=1, max_delay=30)
    client.on_socket_open = _no_delay
    return client


def _no_delay(client, userdata, sock) -> None:
    """Send each packet at once (Nagle's algorithm would hold a PUBACK until the peer's next segment)."""
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def connect_async(client, host: str, port: int, keepalive: int = 30, persistent: bool = True) -> None:
    """Connect in the background (the client's loop retries until it succeeds).

    A persistent session outlives the connection by :data:`SESSION_EXPIRY_S`; a passing client (one
    rollout) takes a clean session that ends with it.
    """
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    properties = Properties(PacketTypes.CONNECT)
    properties.SessionExpiryInterval = SESSION_EXPIRY_S if persistent else 0
    client.connect_async(host, port, keepalive=keepalive, clean_start=not persistent, properties=properties)
