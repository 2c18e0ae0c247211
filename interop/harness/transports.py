"""The configuration of the transports suite's servers: TLS on the NATS and MQTT ports and a
WebSocket listener, as one nats-server `.conf` text that both servers read, with the
development certificates in `certs/` (server certificate for localhost and 127.0.0.1)."""

import os

CERTS = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "certs"))
CA = os.path.join(CERTS, "ca.pem")
SERVER_CERT = os.path.join(CERTS, "server-cert.pem")
SERVER_KEY = os.path.join(CERTS, "server-key.pem")
# Subject `CN=client,O=Jetway Development`, signed by CA.
CLIENT_CERT = os.path.join(CERTS, "client-client-cert.pem")
CLIENT_KEY = os.path.join(CERTS, "client-client-key.pem")

_SERVER_TLS = f'cert_file: "{SERVER_CERT}"\n    key_file: "{SERVER_KEY}"'


def transports_conf(websocket_tls: bool) -> str:
    """NATS over TLS, MQTT over mutual TLS, and a WebSocket listener (`wss://` when
    `websocket_tls`, plain `ws://` otherwise) serving NATS and MQTT (`/mqtt`)."""
    ws_tls = f"tls {{\n    {_SERVER_TLS}\n  }}" if websocket_tls else "no_tls: true"
    return f"""server_name: interop
tls {{
    {_SERVER_TLS}
}}
mqtt {{
  listen: "127.0.0.1:-1"
  # Mutual TLS: MQTT clients over TCP must present a certificate from the CA.
  tls {{
    {_SERVER_TLS}
    ca_file: "{CA}"
    verify: true
  }}
}}
websocket {{
  listen: "127.0.0.1:-1"
  {ws_tls}
}}
"""
