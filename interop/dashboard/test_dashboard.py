"""The monitoring dashboard in a real browser: it loads without console errors, draws a
non-zero message rate while nats.py clients publish, and lists the connections; with MQTT on,
its sessions panel lists paho-mqtt sessions with their subscriptions and in-flight messages.

Jetway only (nats-server has no such page). Leaves screenshots in
interop/dashboard/artifacts/ (dashboard.png, dashboard-mqtt.png) for people to look at.
"""

import asyncio
import os
import queue

import nats
import paho.mqtt.client as mqtt
import pytest

from harness.server import KIND_NATS_SERVER, ServerProcess, detect_kind

from cdp import Browser, Page, chromium_binary

ARTIFACTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "artifacts")
WAIT_S = 20.0


def _jetway_with_monitor(mqtt: bool):
    """A Jetway with monitoring (and MQTT when asked), stopped after the module; fails the
    module if the server logged fatal lines."""
    binary = os.environ.get("JETWAY_BIN", "")
    if detect_kind(binary) == KIND_NATS_SERVER:
        pytest.skip("the dashboard is Jetway's own page")
    srv = ServerProcess(binary, monitor=True, mqtt=mqtt).start()
    try:
        assert srv.http_port, f"no monitor line in the log:\n{srv.log_tail()}"
        yield srv
    finally:
        srv.stop()
    if srv.fatal_lines:
        pytest.fail("server logged fatal lines:\n" + "\n".join(srv.fatal_lines[:20]))


@pytest.fixture(scope="module")
def monitored_server():
    yield from _jetway_with_monitor(mqtt=False)


@pytest.fixture(scope="module")
def mqtt_monitored_server():
    yield from _jetway_with_monitor(mqtt=True)


@pytest.fixture(scope="module")
def browser():
    binary = chromium_binary()
    if binary is None:
        pytest.fail("chromium is not installed (interop/run.sh installs Debian's chromium package)")
    b = Browser(binary).start()
    try:
        yield b
    finally:
        b.stop()


async def publish_until(nc, stop: asyncio.Event) -> None:
    """A steady stream of messages so the rate chart has something to draw."""
    while not stop.is_set():
        for _ in range(50):
            await nc.publish("dashboard.demo", b"hello")
        await nc.flush()
        await asyncio.sleep(0.05)


async def wait_for(page: Page, expression: str) -> object:
    """Polls `expression` until it is truthy. Until the page has loaded, elements may be missing
    and the expression may throw: that counts as "not yet"."""
    deadline = asyncio.get_running_loop().time() + WAIT_S
    while True:
        try:
            value = await page.evaluate(expression)
        except RuntimeError:
            value = None
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"never true: {expression}; page errors: {page.errors}")
        await asyncio.sleep(0.2)


async def settle_and_screenshot(page: Page, name: str) -> None:
    """Waits a few more polls, so errors from later refreshes show up too, keeps a screenshot
    in artifacts/, and checks the page saw no errors at all."""
    polls = await page.evaluate("window.jetwayDashboard.polls")
    await wait_for(page, f"window.jetwayDashboard.polls >= {polls + 2}")
    await page.screenshot(os.path.join(ARTIFACTS, name))
    assert page.errors == []
    assert await page.evaluate("window.jetwayDashboard.errors") == 0


async def test_dashboard_shows_live_rates_and_connections_without_console_errors(monitored_server, browser):
    url = f"nats://127.0.0.1:{monitored_server.port}"
    publisher = await nats.connect(servers=[url], name="dashboard-publisher", allow_reconnect=False)
    subscriber = await nats.connect(servers=[url], name="dashboard-subscriber", allow_reconnect=False)
    received = 0

    async def count(_msg):
        nonlocal received
        received += 1

    await subscriber.subscribe("dashboard.>", cb=count)
    await subscriber.flush()
    # A stream with a consumer, so the JetStream panel has something to show.
    js = publisher.jetstream()
    await js.add_stream(name="DASH", subjects=["dashboard.>"])
    await js.pull_subscribe("dashboard.>", durable="viewer", stream="DASH")
    stop = asyncio.Event()
    traffic = asyncio.create_task(publish_until(publisher, stop))
    page = await Page(browser.page_ws_url()).open()
    try:
        await page.send("Page.navigate", url=f"http://127.0.0.1:{monitored_server.http_port}/")
        rate_in = await wait_for(page, "Number(document.getElementById('rate-chart').dataset.rateIn) > 0 && "
                                       "Number(document.getElementById('rate-chart').dataset.rateIn)")
        assert rate_in > 0
        assert await page.evaluate("window.jetwayDashboard.rates.out") > 0
        names = await wait_for(page, "(() => { const n = [...document.querySelectorAll('#connections tbody tr')]"
                                     ".map(r => r.cells[1].textContent); return n.length >= 2 && n; })()")
        assert {"dashboard-publisher", "dashboard-subscriber"} <= set(names)
        assert await page.evaluate("document.getElementById('health').textContent") == "ok"
        assert await page.evaluate("document.querySelectorAll('#subscriptions tbody tr').length") >= 1
        # The JetStream panel lists the stream and its consumer; without MQTT data that panel
        # stays hidden.
        assert await page.evaluate("document.getElementById('jetstream').hidden") is False
        stream_row = await wait_for(page, "(() => { const r = document.querySelector('#streams tbody tr');"
                                          " return r && r.textContent; })()")
        assert "DASH" in stream_row and "viewer" in stream_row
        assert await page.evaluate("document.getElementById('mqtt').hidden") is True
        await settle_and_screenshot(page, "dashboard.png")
    finally:
        stop.set()
        await traffic
        await page.close()
        await publisher.close()
        await subscriber.close()
    assert received > 0


class Paho:
    """A connected paho-mqtt 3.1.1 client; `manual_ack` leaves QoS 1 messages unacknowledged."""

    def __init__(self, server, client_id, clean=True, manual_ack=False):
        self.messages = queue.Queue()
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                             clean_session=clean, manual_ack=manual_ack)
        connected, self.subscribed = queue.Queue(), queue.Queue()
        self.c.on_connect = lambda _c, _u, _f, rc, _p: connected.put(rc)
        self.c.on_subscribe = lambda _c, _u, _mid, codes, _p: self.subscribed.put(codes)
        self.c.on_message = lambda _c, _u, msg: self.messages.put(msg)
        self.c.connect(server.mqtt_host, server.mqtt_port, keepalive=30)
        self.c.loop_start()
        rc = connected.get(timeout=5)
        assert not rc.is_failure, f"CONNACK {rc}"

    def subscribe(self, topic, qos):
        self.c.subscribe(topic, qos)
        codes = self.subscribed.get(timeout=5)
        assert all(not code.is_failure for code in codes), codes

    def close(self):
        self.c.disconnect()
        self.c.loop_stop()


async def test_dashboard_lists_mqtt_sessions_with_subscriptions_and_in_flight_messages(
        mqtt_monitored_server, browser):
    srv = mqtt_monitored_server
    # A persistent session that never acknowledges, and a clean one with two subscriptions.
    device = Paho(srv, "dash-device", clean=False, manual_ack=True)
    device.subscribe("cmd/#", 1)
    viewer = Paho(srv, "dash-viewer")
    viewer.subscribe("telemetry/#", 0)
    viewer.subscribe("alerts/#", 1)
    publisher = Paho(srv, "dash-publisher")
    info = publisher.c.publish("cmd/reboot", b"now", qos=1)
    info.wait_for_publish(timeout=5)
    assert device.messages.get(timeout=5).payload == b"now"
    page = await Page(browser.page_ws_url()).open()
    try:
        await page.send("Page.navigate", url=f"http://127.0.0.1:{srv.http_port}/")
        await wait_for(page, "document.getElementById('mqtt').hidden === false")
        rows = await wait_for(page, """(() => {
            const rows = [...document.querySelectorAll('#mqtt-sessions tbody tr')]
              .map(r => [...r.cells].map(c => c.textContent));
            const device = rows.find(r => r[0] === 'dash-device');
            return rows.length >= 3 && device && device[5] === '1' && rows; })()""")
        by_id = {r[0]: r for r in rows}
        assert {"dash-device", "dash-viewer", "dash-publisher"} <= set(by_id)
        device_row, viewer_row = by_id["dash-device"], by_id["dash-viewer"]
        # client id, account, state, cid, subscriptions, in flight, queued, awaiting PUBREL
        assert device_row[1] == "$G"
        assert device_row[2] == "connected, persistent"
        assert (device_row[4], device_row[5]) == ("1", "1")
        assert viewer_row[2] == "connected"
        assert (viewer_row[4], viewer_row[5]) == ("2", "0")
        stats = await page.evaluate("document.getElementById('mqtt-stats').textContent")
        assert "connected" in stats and "in flight" in stats
        await settle_and_screenshot(page, "dashboard-mqtt.png")
    finally:
        await page.close()
        for client in (device, viewer, publisher):
            client.close()
