"""A paho-mqtt client for the suites: connected on construction, received messages in a queue,
every wait bounded."""

import queue
import uuid

import paho.mqtt.client as mqtt

WAIT_S = 5.0


class Client:
    """A connected paho client whose received messages land in a queue. It connects to the
    server's MQTT port, or with `websocket` to its WebSocket listener's `/mqtt`; `tls` holds
    `tls_set` arguments (certificate files) for a TLS connection."""

    def __init__(self, server, protocol, name, will=None, clean=True, websocket=False, tls=None):
        self.messages = queue.Queue()
        self.protocol = protocol
        client_id = f"{name}-{uuid.uuid4().hex[:8]}"
        kwargs = {"client_id": client_id, "protocol": protocol}
        if protocol == mqtt.MQTTv311:
            kwargs["clean_session"] = clean
        if websocket:
            kwargs["transport"] = "websockets"
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, **kwargs)
        if websocket:
            self.c.ws_set_options(path="/mqtt")
        if tls:
            self.c.tls_set(**tls)
        self.c.on_message = lambda _c, _u, msg: self.messages.put(msg)
        connected = queue.Queue()
        self.c.on_connect = lambda _c, _u, _f, rc, _p: connected.put(rc)
        subscribed = self.subscribed = queue.Queue()
        self.c.on_subscribe = lambda _c, _u, _mid, codes, _p: subscribed.put(codes)
        published = self.published = queue.Queue()
        self.c.on_publish = lambda _c, _u, mid, _rc, _p: published.put(mid)
        if will:
            self.c.will_set(*will)
        if websocket:
            self.c.connect(server.ws_host, server.ws_port, keepalive=30)
        else:
            self.c.connect(server.mqtt_host, server.mqtt_port, keepalive=30)
        self.c.loop_start()
        rc = connected.get(timeout=WAIT_S)
        assert not rc.is_failure, f"CONNACK {rc}"

    def subscribe(self, topic, qos=0):
        self.c.subscribe(topic, qos)
        codes = self.subscribed.get(timeout=WAIT_S)
        assert all(not code.is_failure for code in codes), codes

    def publish(self, topic, payload, qos=0, retain=False, properties=None):
        info = self.c.publish(topic, payload, qos=qos, retain=retain, properties=properties)
        info.wait_for_publish(timeout=WAIT_S)
        assert info.is_published()

    def next_message(self):
        return self.messages.get(timeout=WAIT_S)

    def close(self):
        self.c.disconnect()
        self.c.loop_stop()
