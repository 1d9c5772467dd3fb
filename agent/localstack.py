"""A LiveKit stack on one machine without Docker: Debian's `redis-server` and `livekit-server` (built from its
Go module by `make stack` / `make test`) as child processes, configured from the shipped `livekit.yaml`.

The derived config keeps every key of the shipped file; only addresses, ports and secrets change (plus the
node IP, which the shipped file discovers by STUN). `voice-agent stack` runs it for people who want the
LiveKit path on a laptop; the test suite runs the same code on free ports inside its own network namespace.
Every process is stopped by the pid this module started, and keeps its log for error messages.
"""

from __future__ import annotations

import copy
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import StartupError

INSTALL_HINTS = {
    "livekit-server": "`make stack` (or `make test`) builds it with `go install` into .venv/bin",
    "livekit-sip": "`make test` builds it from its Go module into .venv/bin",
}


@dataclass(frozen=True)
class StackAddresses:
    """Where the stack listens. `node_ip` is the address advertised in ICE candidates; `bind_ip` the one the
    signalling, TURN and redis sockets bind to."""

    node_ip: str = "127.0.0.1"
    bind_ip: str = "127.0.0.1"
    http_port: int = 7880
    rtc_tcp_port: int = 7881
    rtc_udp_ports: tuple[int, int] = (50000, 60000)
    turn_udp_port: int = 3478
    turn_tls_port: int = 5349
    turn_relay_ports: tuple[int, int] = (30000, 40000)
    redis_port: int = 6379

    @property
    def url(self) -> str:
        return f"ws://{self.bind_ip}:{self.http_port}"


def derive_config(
    shipped: dict[str, Any], where: StackAddresses, api_key: str, api_secret: str
) -> dict[str, Any]:
    """The shipped livekit.yaml with this stack's addresses, ports and keys."""
    config = copy.deepcopy(shipped)
    config["port"] = where.http_port
    config["bind_addresses"] = [where.bind_ip]
    config["rtc"].update(
        tcp_port=where.rtc_tcp_port,
        port_range_start=where.rtc_udp_ports[0],
        port_range_end=where.rtc_udp_ports[1],
        use_external_ip=False,  # no STUN lookup of a public address: advertise node_ip
        node_ip=where.node_ip,
        enable_loopback_candidate=where.node_ip.startswith("127."),
    )
    config["redis"]["address"] = f"{where.bind_ip}:{where.redis_port}"
    config["keys"] = {api_key: api_secret}
    config["turn"].update(
        udp_port=where.turn_udp_port,
        tls_port=where.turn_tls_port,
        relay_range_start=where.turn_relay_ports[0],
        relay_range_end=where.turn_relay_ports[1],
        bind_addresses=[where.bind_ip],
    )
    config["webhook"]["api_key"] = api_key
    return config


def find_binary(name: str) -> str:
    """`name` next to this Python (the virtualenv's bin/, where the Makefile installs it) or on PATH."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.is_file() else shutil.which(name)
    if not found:
        raise StartupError(f"{name} not found: {INSTALL_HINTS.get(name, 'install it')}")
    return found


@dataclass
class ChildProcess:
    """A process this module started; `stop()` signals exactly that pid."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path

    def log_tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    def check_running(self) -> None:
        if self.process.poll() is not None:
            raise StartupError(
                f"{self.name} exited with status {self.process.returncode}; its log ends:\n{self.log_tail()}"
            )

    def stop(self, timeout: float = 10.0) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_child(name: str, argv: list[str], log: Path, env: dict[str, str] | None = None) -> ChildProcess:
    with log.open("ab") as out:
        process = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env
        )
    return ChildProcess(name, process, log)


def without_livekit_env() -> dict[str, str]:
    """This environment minus LIVEKIT_*: a child server takes its keys from its config file only."""
    return {k: v for k, v in os.environ.items() if not k.startswith("LIVEKIT_")}


def wait_until(child: ChildProcess, ready: Any, timeout: float, what: str) -> None:
    """Poll `ready()` (bounded: every 0.1 s for `timeout` s) while `child` keeps running."""
    deadline = time.monotonic() + timeout
    while not ready():
        child.check_running()
        if time.monotonic() > deadline:
            raise StartupError(f"{child.name} did not {what} within {timeout:.0f} s; log:\n{child.log_tail()}")
        time.sleep(0.1)


def redis_answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def http_answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1.0) as r:
            return r.status == 200
    except (urllib.error.URLError, OSError):
        return False


@dataclass
class LocalStack:
    """redis-server + livekit-server. `start()` returns once both answer; `stop()` ends them (newest first)."""

    shipped_config: Path
    workdir: Path
    where: StackAddresses = field(default_factory=StackAddresses)
    api_key: str = field(default_factory=lambda: "API" + secrets.token_hex(6))
    api_secret: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    # without redis the server runs alone (rooms and agent dispatch work, SIP does not)
    with_redis: bool = True
    children: list[ChildProcess] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.where.url

    @property
    def http_url(self) -> str:
        return f"http://{self.where.bind_ip}:{self.where.http_port}"

    @property
    def server(self) -> ChildProcess:
        return next(c for c in self.children if c.name == "livekit-server")

    def env(self) -> dict[str, str]:
        """The ecosystem's variables for clients of this stack (workers, `voice-agent web`, the lk CLI)."""
        return {"LIVEKIT_URL": self.url, "LIVEKIT_API_KEY": self.api_key, "LIVEKIT_API_SECRET": self.api_secret}

    def start(self, timeout: float = 30.0) -> LocalStack:
        server_binary = find_binary("livekit-server")
        redis_binary = find_binary("redis-server") if self.with_redis else ""
        self.workdir.mkdir(parents=True, exist_ok=True)
        shipped = yaml.safe_load(self.shipped_config.read_text())
        config = derive_config(shipped, self.where, self.api_key, self.api_secret)
        if not self.with_redis:
            del config["redis"]
        config_path = self.workdir / "livekit.yaml"
        config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        config_path.chmod(0o600)  # it holds the secret
        try:
            if self.with_redis:
                self._start_redis(redis_binary, timeout)
            server = start_child(
                "livekit-server",
                [server_binary, "--config", str(config_path)],
                self.workdir / "livekit-server.log",
                env=without_livekit_env(),
            )
            self.children.append(server)
            wait_until(server, lambda: http_answers(self.http_url + "/"), timeout, "answer on " + self.http_url)
        except BaseException:
            self.stop()
            raise
        return self

    def _start_redis(self, binary: str, timeout: float) -> None:
        redis = start_child(
            "redis-server",
            [binary, "--bind", self.where.bind_ip, "--port", str(self.where.redis_port),
             "--save", "", "--appendonly", "no", "--dir", str(self.workdir)],
            self.workdir / "redis.log",
        )
        self.children.append(redis)
        wait_until(redis, lambda: redis_answers(self.where.bind_ip, self.where.redis_port), timeout, "answer")

    def stop(self) -> None:
        for child in reversed(self.children):
            child.stop()
        self.children.clear()


def run_stack(shipped_config: Path, workdir: Path, web_port: int) -> None:
    """`voice-agent stack`: the stack, one worker (`voice-agent dev`) and the page (`voice-agent web`) until
    Ctrl-C or until one of them exits; everything started here is stopped by its pid."""
    if not shipped_config.is_file():
        raise StartupError(f"{shipped_config} not found: run `voice-agent stack` from the repository")
    stack = LocalStack(shipped_config, workdir).start()
    agent = str(Path(sys.executable).parent / "voice-agent")
    env = os.environ | stack.env() | {"VOICE_AGENT_PORT": str(web_port), "VOICE_AGENT_WORKER_PORT": "0"}
    stop = {"signal": False}

    def on_signal(*_: object) -> None:
        stop["signal"] = True

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        for name, command in (("worker", "dev"), ("web", "web")):
            log = workdir / f"{name}.log"
            stack.children.append(start_child(name, [agent, command], log, env=env))
        print(
            f"LiveKit stack on {stack.url} (logs in {workdir}); the page in room mode: "
            f"http://127.0.0.1:{web_port}/ - Ctrl-C stops everything",
            flush=True,
        )
        while not stop["signal"]:
            for child in stack.children:
                child.check_running()
            time.sleep(0.5)
    finally:
        stack.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
