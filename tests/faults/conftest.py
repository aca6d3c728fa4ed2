"""Helpers for the fault tests: free ports, a private redis-server, gunicorn and Celery
subprocesses pointed at the pytest test database, a small TCP proxy that can cut
PostgreSQL off, plain HTTP calls and bounded waits.

Everything started here is a child of the test run and is killed by the fixture that
started it (by pid, never by name), so a failing test leaves no process, port or
directory behind. The shared PostgreSQL and the shared Redis are never stopped or
flushed: faults are injected only into processes these helpers started.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis
from django.conf import settings

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
REDIS_SERVER = "/usr/bin/redis-server"

# Variables of the parent environment that must not leak into the services under test.
_DROP_PREFIXES = (
    "DJANGO_",
    "DATABASE_",
    "DB_",
    "REDIS_",
    "CELERY_",
    "GUNICORN_",
    "PROMETHEUS_",
    "TEST_",
    "COUPON_",
    "IDEMPOTENCY_",
    "CACHE_",
)


# --- small utilities --------------------------------------------------------------------


def free_port() -> int:
    """A TCP port nothing listens on right now (the kernel's choice)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(
    predicate: Callable[[], Any], *, timeout: float, what: str, interval: float = 0.05
) -> Any:
    """Poll `predicate` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            value = predicate()
        except AssertionError:
            raise
        except Exception as exc:  # keep polling, report the last error
            last_error, value = exc, None
        if value:
            return value
        if time.monotonic() >= deadline:
            detail = f" (last error: {last_error!r})" if last_error else ""
            raise AssertionError(f"timed out after {timeout}s waiting for {what}{detail}")
        time.sleep(interval)


def wait_for_progress(
    read: Callable[[], Any],
    done: Callable[[Any], bool],
    *,
    stall: float,
    what: str,
    interval: float = 0.2,
    limit: float = 600.0,
) -> Any:
    """Poll `read()` (something cheap: a status, a counter) until `done(value)`; fail only
    when the value stays the same for `stall` seconds, so a slow machine that keeps moving
    passes and a stuck one fails fast. `limit` bounds the whole wait (a value that keeps
    changing without ever being done)."""
    started = last_change = time.monotonic()
    last: Any = object()
    last_error: BaseException | None = None
    while True:
        try:
            value = read()
        except AssertionError:
            raise
        except Exception as exc:  # keep polling, report the last error
            last_error = exc
        else:
            if done(value):
                return value
            if value != last:
                last, last_change = value, time.monotonic()
        now = time.monotonic()
        if now - last_change >= stall or now - started >= limit:
            detail = f" (last error: {last_error!r})" if last_error else ""
            why = (
                f"no progress for {stall}s"
                if now - last_change >= stall
                else f"not done after {limit}s"
            )
            raise AssertionError(f"{why} waiting for {what}; last value {last!r}{detail}")
        time.sleep(interval)


def port_refuses(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return False
    except ConnectionRefusedError:
        return True


def pid_alive(pid: int) -> bool:
    """True while `pid` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


def children_of(pid: int) -> list[int]:
    """Live direct children of `pid` (read from /proc, like `ps --ppid`)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if int(fields[1]) == pid and fields[0] not in ("Z", "X"):
            found.append(int(entry))
    return sorted(found)


def subprocess_database_url() -> str:
    """The URL of the database pytest-django created for this run (test_...)."""
    db = settings.DATABASES["default"]
    assert db["NAME"].startswith("test_"), db["NAME"]
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    return (
        f"postgres://{db['USER']}{password}@{db['HOST'] or '127.0.0.1'}:"
        f"{db['PORT'] or 5432}/{db['NAME']}"
    )


def service_env(**overrides: str) -> dict[str, str]:
    """Environment for a service subprocess: local settings, nothing inherited that could
    point it at a shared database or Redis, plus `overrides`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_DROP_PREFIXES)}
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "config.settings.local",
            "PYTHONUNBUFFERED": "1",
            "LOG_LEVEL": "WARNING",
            "CACHE_KEY_PREFIX": "faults",
            "SECRET_KEY": "fault-tests-secret-key",
        }
    )
    env.update(overrides)
    return env


# --- HTTP -------------------------------------------------------------------------------


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes
    elapsed: float

    def json(self) -> Any:
        return json.loads(self.body)


def http_call(
    port: int,
    method: str,
    path: str,
    body: Any = None,
    *,
    headers: dict[str, str] | None = None,
    timeout: float = 15.0,
) -> Reply:
    """One request on a fresh connection. Connection failures raise (OSError or
    http.client.HTTPException), exactly what a storefront would see."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    payload = None if body is None else json.dumps(body).encode()
    all_headers = {"Connection": "close", **(headers or {})}
    if payload is not None:
        all_headers["Content-Type"] = "application/json"
    started = time.monotonic()
    try:
        conn.request(method, path, body=payload, headers=all_headers)
        response = conn.getresponse()
        data = response.read()
        return Reply(
            response.status,
            {k.lower(): v for k, v in response.getheaders()},
            data,
            time.monotonic() - started,
        )
    finally:
        conn.close()


# --- processes --------------------------------------------------------------------------


@dataclass
class Service:
    """A subprocess in its own session, with its output in a log file."""

    name: str
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen | None = None
    seen_children: set[int] = field(default_factory=set)

    def start(self) -> Service:
        log = open(self.log_path, "ab")  # noqa: SIM115 - closed with the process
        try:
            self.proc = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
                self.argv,
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        finally:
            log.close()
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def children(self) -> list[int]:
        kids = children_of(self.pid) if self.alive() else []
        self.seen_children.update(kids)
        return kids

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, n: int = 40) -> str:
        return "\n".join(self.log().splitlines()[-n:])

    def signal(self, sig: int) -> None:
        if self.alive():
            os.kill(self.pid, sig)

    def stop(self, *, grace: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after `grace` seconds; then any child still alive."""
        if self.proc is None:
            return
        with contextlib.suppress(Exception):
            self.children()
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    self.proc.kill()
                self.proc.wait(timeout=10)
        for pid in sorted(self.seen_children):
            if pid_alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)

    def kill(self) -> None:
        """SIGKILL the process itself (not its children) and reap it."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


class RedisServer:
    """A private redis-server on its own port: killing it touches nobody else."""

    def __init__(self, workdir: Path):
        self.port = free_port()
        self.workdir = workdir
        self.service: Service | None = None
        self.starts = 0

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def client(self, db: int = 0) -> redis.Redis:
        return redis.Redis(
            host="127.0.0.1", port=self.port, db=db, socket_timeout=2, socket_connect_timeout=2
        )

    def start(self) -> RedisServer:
        self.starts += 1
        self.service = Service(
            f"redis-{self.port}",
            [
                REDIS_SERVER,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
                "--dir",
                str(self.workdir),
                "--loglevel",
                "warning",
            ],
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
            log_path=self.workdir / f"redis-{self.port}-{self.starts}.log",
        ).start()

        def answers() -> bool:
            assert self.service.alive(), f"redis-server exited:\n{self.service.log_tail()}"
            with self.client() as c:
                return bool(c.ping())

        wait_until(answers, timeout=10, what=f"redis-server on port {self.port}")
        return self

    def kill(self) -> None:
        """SIGKILL: the abrupt loss of Redis (no shutdown, no save)."""
        assert self.service is not None
        self.service.kill()
        wait_until(
            lambda: port_refuses(self.port),
            timeout=5,
            what=f"port {self.port} to refuse connections",
        )

    def stop(self) -> None:
        if self.service is not None:
            self.service.stop(grace=5)


class Gunicorn:
    """The real web server (config/gunicorn.py, sync workers) on a free port."""

    def __init__(self, workdir: Path, env: dict[str, str], *, workers: int = 2):
        self.port = free_port()
        metrics_dir = workdir / f"prometheus-{self.port}"
        metrics_dir.mkdir()
        self.workers = workers
        self.service = Service(
            f"gunicorn-{self.port}",
            [str(BIN / "gunicorn"), "config.wsgi:application", "--config", "config/gunicorn.py"],
            env={
                "GUNICORN_TIMEOUT": "30",
                **env,
                "GUNICORN_BIND": f"127.0.0.1:{self.port}",
                "GUNICORN_WORKERS": str(workers),
                "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
            },
            log_path=workdir / f"gunicorn-{self.port}.log",
        )

    def start(self) -> Gunicorn:
        self.service.start()

        def up() -> bool:
            assert self.service.alive(), f"gunicorn exited:\n{self.service.log_tail()}"
            return (
                len(self.worker_pids()) == self.workers
                and http_call(self.port, "GET", "/health/live", timeout=2).status == 200
            )

        wait_until(up, timeout=30, what="gunicorn to serve /health/live", interval=0.2)
        return self

    def worker_pids(self) -> list[int]:
        return self.service.children()

    def call(self, method: str, path: str, body: Any = None, **kw) -> Reply:
        return http_call(self.port, method, path, body, **kw)

    def stop(self) -> None:
        self.service.stop(grace=15)


class CeleryWorker:
    """`celery -A config worker`, prefork, one pool process, INFO log to a file. `queue`:
    consume only that queue (a name of the test run's own keeps runs that share one broker
    database from taking each other's tasks)."""

    def __init__(self, workdir: Path, env: dict[str, str], *, queue: str | None = None):
        tag = free_port()
        self.service = Service(
            f"celery-{tag}",
            [
                str(BIN / "celery"),
                "-A",
                "config",
                "worker",
                "--pool",
                "prefork",
                "--concurrency",
                "1",
                "--loglevel",
                "INFO",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "--hostname",
                f"faults-{tag}@%h",
                *(["--queues", queue] if queue else []),
            ],
            env=env,
            log_path=workdir / f"celery-{tag}.log",
        )

    def start(self) -> CeleryWorker:
        self.service.start()

        def ready() -> bool:
            assert self.service.alive(), f"celery exited:\n{self.service.log_tail()}"
            return " ready." in self.service.log() and len(self.pool_pids()) == 1

        wait_until(ready, timeout=40, what="the Celery worker to be ready", interval=0.2)
        return self

    def pool_pids(self) -> list[int]:
        return self.service.children()

    def stop(self) -> None:
        self.service.stop(grace=15)


class TcpProxy:
    """Forwards 127.0.0.1:<port> to PostgreSQL; `stop()` drops every connection and stops
    listening (the database "disappears"), `start()` brings it back on the same port."""

    def __init__(self, target: tuple[str, int]):
        self.target = target
        self.port = free_port()
        self._listener: socket.socket | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []

    def start(self) -> TcpProxy:
        self._stop.clear()
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        listener.settimeout(0.1)
        self._listener = listener
        self._spawn(self._accept_loop)
        return self

    def _spawn(self, target, *args) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept_loop(self) -> None:
        listener = self._listener
        while not self._stop.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            client.settimeout(None)
            upstream.settimeout(None)
            with self._lock:
                if self._stop.is_set():
                    client.close()
                    upstream.close()
                    return
                self._sockets.update((client, upstream))
            self._spawn(self._pump, client, upstream)
            self._spawn(self._pump, upstream, client)

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def stop(self) -> None:
        self._stop.set()
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        with self._lock:
            sockets, self._sockets = list(self._sockets), set()
        for s in sockets:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
        threads, self._threads = self._threads, []
        for thread in threads:
            thread.join(timeout=5)
        for s in sockets:
            s.close()


# --- fixtures ---------------------------------------------------------------------------


@pytest.fixture
def private_redis(tmp_path) -> Iterator[Callable[[], RedisServer]]:
    """factory: private_redis() -> a started RedisServer on a free port."""
    servers: list[RedisServer] = []

    def make() -> RedisServer:
        server = RedisServer(tmp_path)
        servers.append(server)
        return server.start()

    yield make
    for server in servers:
        server.stop()


@pytest.fixture
def gunicorn(transactional_db, tmp_path) -> Iterator[Callable[..., Gunicorn]]:
    """factory: gunicorn(env, workers=2) -> a serving gunicorn. Stopped before the test
    database is flushed (it depends on transactional_db)."""
    servers: list[Gunicorn] = []

    def make(env: dict[str, str], *, workers: int = 2) -> Gunicorn:
        server = Gunicorn(tmp_path, env, workers=workers)
        servers.append(server)
        return server.start()

    yield make
    for server in servers:
        server.stop()


@pytest.fixture
def celery_worker(transactional_db, tmp_path) -> Iterator[Callable[..., CeleryWorker]]:
    workers: list[CeleryWorker] = []

    def make(env: dict[str, str]) -> CeleryWorker:
        worker = CeleryWorker(tmp_path, env)
        workers.append(worker)
        return worker.start()

    yield make
    for worker in workers:
        worker.stop()


@pytest.fixture
def db_proxy() -> Iterator[TcpProxy]:
    """A started TCP proxy to the shared PostgreSQL (only the proxy is ever cut)."""
    db = settings.DATABASES["default"]
    proxy = TcpProxy((db["HOST"] or "127.0.0.1", int(db["PORT"] or 5432))).start()
    yield proxy
    proxy.stop()
