"""Start one NATS-compatible server on a random loopback port; stop it by its PID.

The port is discovered the way an operator would: the server is started with
`-a 127.0.0.1 -p -1` and we wait for its `Listening for client connections on HOST:PORT`
log line. Jetway and nats-server need slightly different flags (Jetway also starts MQTT
and monitoring by default and takes `--mqtt_port`, which nats-server rejects), so the
command is built per server kind.
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import ctypes.util
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from typing import Deque, List, Optional

LISTEN_LINE = re.compile(rb"Listening for client connections on (\S+):(\d+)")
# Logged before the listen line when monitoring is on (both servers print it this way).
MONITOR_LINE = re.compile(rb"Starting http monitor on (\S+):(\d+)")
# `mqtt://HOST:PORT`, or `tls://HOST:PORT` with TLS (older Jetway builds wrote `HOST:PORT`).
MQTT_LISTEN_LINE = re.compile(rb"Listening for MQTT clients on (?:mqtt://|tls://)?(\S+):(\d+)")
# Both servers write `ws://HOST:PORT` or `wss://HOST:PORT`.
WS_LISTEN_LINE = re.compile(rb"Listening for websocket clients on wss?://(\S+):(\d+)")
# Tracing output may be coloured; colour codes must not break the match above.
ANSI_ESCAPE = re.compile(rb"\x1b\[[0-9;]*[A-Za-z]")
# Lines that mean the server is broken even if every client call happened to succeed.
FATAL_LINE = re.compile(rb"panicked at|\[FTL\]|fatal error:")

START_TIMEOUT_S = 10.0
STOP_GRACE_S = 5.0
LOG_TAIL_LINES = 400

KIND_JETWAY = "jetway"
KIND_NATS_SERVER = "nats-server"


def detect_kind(binary: str) -> str:
    """`INTEROP_SERVER_KIND` wins; otherwise a binary named nats-server* is the reference."""
    explicit = os.environ.get("INTEROP_SERVER_KIND", "").strip()
    if explicit:
        if explicit not in (KIND_JETWAY, KIND_NATS_SERVER):
            raise ValueError(f"INTEROP_SERVER_KIND must be {KIND_JETWAY!r} or {KIND_NATS_SERVER!r}")
        return explicit
    return KIND_NATS_SERVER if os.path.basename(binary).startswith("nats-server") else KIND_JETWAY


# nats-server has no MQTT flag; MQTT needs a config file with a server name and JetStream.
NATS_SERVER_MQTT_CONF = """server_name: interop
mqtt { listen: "127.0.0.1:-1" }
"""


def server_command(
    binary: str,
    kind: str,
    store_dir: str,
    monitor: bool = False,
    mqtt: bool = False,
    conf: Optional[str] = None,
) -> List[str]:
    """The full command line; `INTEROP_SERVER_ARGS` appends extra flags for experiments.
    With `monitor`, the HTTP monitor listens on a random port too; with `mqtt`, the MQTT
    listener is on a random loopback port. With `conf`, that nats-server `.conf` text is the
    configuration (both servers read it; it must put its listeners on loopback and, for MQTT,
    name the server)."""
    cmd = [binary, "-a", "127.0.0.1", "-p", "-1"]
    if monitor:
        cmd += ["-m", "-1"]
    if conf is not None:
        path = os.path.join(os.path.dirname(store_dir), "server.conf")
        with open(path, "w", encoding="utf-8") as f:
            f.write(conf)
        if kind == KIND_JETWAY:
            cmd += [] if monitor else ["-m", "0"]
            # MQTT is on by default (port 1883): off unless asked for (the config places it).
            cmd += [] if mqtt else ["--mqtt_port", "0"]
            cmd += ["-sd", store_dir, "-c", path]
        else:
            cmd += ["-js", "-sd", store_dir, "-c", path]
        return cmd + shlex.split(os.environ.get("INTEROP_SERVER_ARGS", ""))
    if kind == KIND_JETWAY:
        # Jetway enables monitoring, MQTT and JetStream (in ./data) by default.
        cmd += [] if monitor else ["-m", "0"]
        cmd += ["--mqtt_port", "-1" if mqtt else "0", "-sd", store_dir]
        if mqtt:
            # The MQTT listener follows `mqtt.host` (all interfaces by default), not `-a`.
            conf = os.path.join(os.path.dirname(store_dir), "mqtt.toml")
            with open(conf, "w", encoding="utf-8") as f:
                f.write('[mqtt]\nhost = "127.0.0.1"\n')
            cmd += ["-c", conf]
    else:
        # Enable JetStream on the reference too, so both servers expose the same APIs.
        cmd += ["-js", "-sd", store_dir]
        if mqtt:
            conf = os.path.join(os.path.dirname(store_dir), "mqtt.conf")
            with open(conf, "w", encoding="utf-8") as f:
                f.write(NATS_SERVER_MQTT_CONF)
            cmd += ["-c", conf]
    cmd += shlex.split(os.environ.get("INTEROP_SERVER_ARGS", ""))
    return cmd


def _die_with_parent() -> None:
    """Runs in the child before exec: if the test process dies, the kernel kills the server."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass


PR_SET_PDEATHSIG = 1


class ServerError(RuntimeError):
    pass


class ServerProcess:
    """One server child process, its log, and the loopback address it listens on."""

    def __init__(
        self,
        binary: str,
        kind: Optional[str] = None,
        monitor: bool = False,
        mqtt: bool = False,
        conf: Optional[str] = None,
        websocket: bool = False,
    ) -> None:
        self.binary = binary
        self.kind = kind or detect_kind(binary)
        self.monitor = monitor
        self.mqtt = mqtt
        # A `.conf` text to run with; `websocket` waits for its websocket listen line too.
        self.conf = conf
        self.websocket = websocket
        self.ws_host: Optional[str] = None
        self.ws_port: Optional[int] = None
        self.host: Optional[str] = None
        self.port: Optional[int] = None
        # Where the HTTP monitor listens, when started with `monitor=True`.
        self.http_host: Optional[str] = None
        self.http_port: Optional[int] = None
        self.mqtt_host: Optional[str] = None
        self.mqtt_port: Optional[int] = None
        self.fatal_lines: List[str] = []
        self._log: Deque[str] = collections.deque(maxlen=LOG_TAIL_LINES)
        self._log_lock = threading.Lock()
        self._listening = threading.Event()
        self._proc: Optional[subprocess.Popen] = None
        self._reader: Optional[threading.Thread] = None
        self._workdir: Optional[str] = None

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    @property
    def pid(self) -> Optional[int]:
        return self._proc.pid if self._proc else None

    def exited(self) -> Optional[int]:
        """The exit code if the process has already ended, else None."""
        return self._proc.poll() if self._proc else None

    def log_tail(self, lines: int = 60) -> str:
        with self._log_lock:
            return "\n".join(list(self._log)[-lines:])

    def reload(self, conf: str) -> None:
        """Rewrites the `.conf` the server was started with and sends it SIGHUP (nats-server's
        and Jetway's signal to read the configuration again)."""
        assert self.conf is not None and self._workdir is not None, "started with a conf"
        with open(os.path.join(self._workdir, "server.conf"), "w", encoding="utf-8") as f:
            f.write(conf)
        self.conf = conf
        os.kill(self._proc.pid, signal.SIGHUP)

    def start(self) -> "ServerProcess":
        # The working directory is a fresh temp dir, so a server that ignores `-sd`
        # still cannot write `./data` into the repository.
        self._workdir = tempfile.mkdtemp(prefix="jetway-interop-")
        store_dir = os.path.join(self._workdir, "store")
        cmd = server_command(self.binary, self.kind, store_dir, self.monitor, self.mqtt, self.conf)
        self._proc = subprocess.Popen(
            cmd,
            cwd=self._workdir,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            # Merged: the listen line belongs on stderr, but a server logging to stdout
            # should fail the tests that matter, not the harness.
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )
        self._reader = threading.Thread(target=self._read_log, name="server-log", daemon=True)
        self._reader.start()
        self._listening.wait(START_TIMEOUT_S)
        if not self._all_listening():
            code = self.exited()
            self.stop()
            why = f"exited with code {code}" if code is not None else f"no listen line within {START_TIMEOUT_S:.0f}s"
            raise ServerError(f"{shlex.join(cmd)}: {why}\n--- server log ---\n{self.log_tail()}")
        if self.host not in ("127.0.0.1", "localhost", "::1", "[::1]"):
            self.stop()
            raise ServerError(f"server listens on {self.host}, expected loopback only")
        return self

    def _read_log(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        # Ends at EOF, i.e. when the process (and anything holding its stdout) exits.
        for raw in iter(self._proc.stdout.readline, b""):
            line = ANSI_ESCAPE.sub(b"", raw.rstrip(b"\r\n"))
            with self._log_lock:
                self._log.append(line.decode("utf-8", "replace"))
            if FATAL_LINE.search(line):
                self.fatal_lines.append(line.decode("utf-8", "replace"))
            if self.http_port is None:
                found = MONITOR_LINE.search(line)
                if found:
                    self.http_host = found.group(1).decode()
                    self.http_port = int(found.group(2))
            if self.mqtt and self.mqtt_port is None:
                found = MQTT_LISTEN_LINE.search(line)
                if found:
                    self.mqtt_host = found.group(1).decode()
                    self.mqtt_port = int(found.group(2))
            if self.websocket and self.ws_port is None:
                found = WS_LISTEN_LINE.search(line)
                if found:
                    self.ws_host = found.group(1).decode()
                    self.ws_port = int(found.group(2))
            if self.port is None:
                found = LISTEN_LINE.search(line)
                if found:
                    self.host = found.group(1).decode()
                    self.port = int(found.group(2))
            if self._all_listening():
                self._listening.set()
        self._listening.set()

    def _all_listening(self) -> bool:
        """Every listener asked for has logged its address."""
        return (
            self.port is not None
            and (self.mqtt_port is not None or not self.mqtt)
            and (self.ws_port is not None or not self.websocket)
        )

    def stop(self) -> Optional[int]:
        """SIGTERM, then SIGKILL after a grace period; returns the exit code."""
        code = None
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.send_signal(signal.SIGTERM)
                try:
                    self._proc.wait(STOP_GRACE_S)
                except subprocess.TimeoutExpired:
                    with self._log_lock:
                        self._log.append(f"[harness] no exit {STOP_GRACE_S:.0f}s after SIGTERM: SIGKILL")
                    self._proc.kill()
                    self._proc.wait(STOP_GRACE_S)
            code = self._proc.returncode
            if self._reader is not None:
                self._reader.join(STOP_GRACE_S)
            if self._proc.stdout is not None:
                self._proc.stdout.close()
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None
        return code

    def __enter__(self) -> "ServerProcess":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()


def server_version(binary: str) -> str:
    """`--version` output for the report header; never fails the run."""
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, timeout=10, check=False)
        return (out.stdout or out.stderr).decode("utf-8", "replace").strip() or "unknown"
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unknown ({exc})"


@contextlib.contextmanager
def started_pair(binary: str, reference_binary: str, **options):
    """The server under test and the reference nats-server, started with the same `options`
    (`conf`, `mqtt`, ...), as (ours, theirs); both stopped at the end."""
    ours = ServerProcess(binary, **options)
    theirs = ServerProcess(reference_binary, kind=KIND_NATS_SERVER, **options)
    ours.start()
    try:
        theirs.start()
        try:
            yield ours, theirs
        finally:
            theirs.stop()
    finally:
        ours.stop()
