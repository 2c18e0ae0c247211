"""paho-mqtt suite: MQTT 3.1.1 and 5 through the Eclipse Paho Python client.

MQTT 5 tests are skipped on the reference: nats-server implements MQTT 3.1.1 only.
"""
