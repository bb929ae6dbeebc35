"""`broker up`: the whole broker on one machine, with embedded defaults (DESIGN §7).

A small supervisor: it takes a lock on the data directory, starts the embedded Redis (unless
``BROKER_REDIS_URL`` is set), applies the migrations once, then runs the API, one Celery worker, beat and the
dashboard as children in its own process group, restarts a child that dies (with back-off, a few times), and
stops everything on SIGINT/SIGTERM within seconds. Each child writes to ``<data_dir>/logs/<name>.log``.

The children come from :func:`embedded_children`; the national emulators will be one more line there.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import importlib.util
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO, Any

import httpx

from broker.config import Settings
from broker.embedded import (
    RedisServer,
    RedisServerError,
    descendants,
    free_port,
    kill_tree,
    parent_death_signal,
    tail,
)

__all__ = [
    "BROKER_CMD",
    "ChildSpec",
    "Ports",
    "dashboard_app",
    "embedded_children",
    "run_up",
]

#: How to run a `broker` subcommand in a child process (same interpreter, same environment).
BROKER_CMD: tuple[str, ...] = (sys.executable, "-m", "broker")

_PR_SET_CHILD_SUBREAPER = 36
_WILDCARD_HOSTS = {"0.0.0.0", "::", ""}


@dataclass
class ChildSpec:
    """One supervised child process."""

    name: str  # also the log file name: <data_dir>/logs/<name>.log
    cmd: list[str]
    env: dict[str, str] = field(default_factory=dict)  # added to the common environment
    health_url: str | None = None  # `broker up` is ready once every health_url answers 200
    max_restarts: int = 5  # consecutive unexpected exits before `broker up` gives up
    stop_signal: int = signal.SIGTERM
    cwd: Path | None = None  # working directory (the dashboard reads .streamlit/secrets.toml there)


@dataclass(frozen=True)
class Ports:
    """Where the children listen.

    Emulator ports are None when that national target is configured (or emulators are off).
    """

    host: str
    api: int
    dashboard: int
    datagouv: int | None = None  # local data.gouv.fr emulator, when no data.gouv.fr URL is configured
    geoplateforme: int | None = None  # local Géoplateforme emulator, likewise

    @property
    def datagouv_url(self) -> str:
        return f"http://{_url_host(self.local_host)}:{self.datagouv}"

    @property
    def geoplateforme_url(self) -> str:
        return f"http://{_url_host(self.local_host)}:{self.geoplateforme}"

    @property
    def local_host(self) -> str:
        """The address to reach ``host`` from this machine (a wildcard bind is reached on loopback)."""
        return "127.0.0.1" if self.host in _WILDCARD_HOSTS else self.host

    @property
    def api_url(self) -> str:
        return f"http://{_url_host(self.local_host)}:{self.api}"

    @property
    def dashboard_url(self) -> str:
        return f"http://{_url_host(self.local_host)}:{self.dashboard}"


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def dashboard_app() -> Path | None:
    """Path of the Streamlit app (``dashboard/app.py``), or None when it is not there (yet)."""
    spec = importlib.util.find_spec("dashboard")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "app.py"
        if candidate.is_file():
            return candidate
    return None


def embedded_children(settings: Settings, ports: Ports) -> list[ChildSpec]:
    """The processes `broker up` runs next to its embedded Redis, in start order."""
    children = [
        ChildSpec(
            "api",
            [*BROKER_CMD, "api", "--host", ports.host, "--port", str(ports.api)],
            health_url=f"{ports.api_url}/healthz",
        ),
        ChildSpec("worker", [*BROKER_CMD, "worker", "--concurrency", "2"]),
        ChildSpec("beat", [*BROKER_CMD, "beat"]),
    ]
    app = dashboard_app()
    if app is not None:
        children.append(
            ChildSpec(
                "dashboard",
                [
                    sys.executable,
                    "-m",
                    "streamlit",
                    "run",
                    str(app),
                    "--server.port",
                    str(ports.dashboard),
                    "--server.address",
                    ports.host,
                    "--server.headless",
                    "true",
                    "--browser.gatherUsageStats",
                    "false",
                ],
                env={"BROKER_API_URL": ports.api_url},
                cwd=dashboard_workdir(settings),
            )
        )
    # --- intake (Intake issue): the SFTP deposit server; BROKER_SFTP_PORT, else a free loopback port
    # (so two `broker up` side by side never collide); the port is in <data_dir>/run/sftp.json.
    from broker.cli import app as cli_app
    from broker.embedded import free_port
    from broker.sftp.settings import SftpSettings

    if any(command.name == "sftp" for command in cli_app.registered_commands):
        sftp_port = SftpSettings().sftp_port or free_port()
        sftp_cmd = [*BROKER_CMD, "sftp", "--host", ports.host, "--port", str(sftp_port)]
        children.append(ChildSpec("sftp", sftp_cmd))
    # --- end intake
    # National emulators run first in the list's spirit of "what the others need", when asked for.
    state = settings.data_dir / "emulators"
    if ports.datagouv is not None:
        children.insert(
            0,
            ChildSpec(
                "emulator-datagouv",
                [
                    *BROKER_CMD,
                    "emulate",
                    "datagouv",
                    "--host",
                    ports.local_host,
                    "--port",
                    str(ports.datagouv),
                    "--allow-local-urls",
                    "--state-dir",
                    str(state / "datagouv"),
                ],
                health_url=f"{ports.datagouv_url}/api/1/datasets/licenses/",
            ),
        )
    if ports.geoplateforme is not None:
        children.insert(
            0,
            ChildSpec(
                "emulator-geoplateforme",
                [
                    *BROKER_CMD,
                    "emulate",
                    "geoplateforme",
                    "--host",
                    ports.local_host,
                    "--port",
                    str(ports.geoplateforme),
                    "--step-seconds",
                    str(settings.emulator_step_seconds),
                    "--state-dir",
                    str(state / "geoplateforme"),
                ],
                health_url=f"{ports.geoplateforme_url}/_emulator/state",
            ),
        )
    return children


def dashboard_workdir(settings: Settings) -> Path:
    """The dashboard's working directory: Streamlit reads ``.streamlit/secrets.toml`` from it, where the
    OIDC login settings (``st.login``) are written when an issuer is configured (docs/auth.md)."""
    from broker.auth.settings import get_auth_settings, streamlit_auth_secrets

    workdir = settings.data_dir / "dashboard"
    secrets_file = workdir / ".streamlit" / "secrets.toml"
    secrets_file.parent.mkdir(parents=True, exist_ok=True)
    try:
        text = streamlit_auth_secrets(get_auth_settings())
    except ValueError:
        secrets_file.unlink(missing_ok=True)  # no SSO configured: the dashboard offers local tokens
        return workdir
    fd = os.open(secrets_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    return workdir


def national_emulator_env(settings: Settings, ports: Ports) -> dict[str, str]:
    """Settings that point the broker at the local emulators `broker up` runs (DESIGN §7)."""
    env: dict[str, str] = {}
    if ports.datagouv is not None:
        env["BROKER_DATAGOUV_URL"] = f"{ports.datagouv_url}/api/1"
        env["BROKER_DATAGOUV_EMULATOR"] = "true"
    if ports.geoplateforme is not None:
        root = ports.geoplateforme_url
        env["BROKER_GEOPLATEFORME_API_URL"] = f"{root}/api"
        env["BROKER_GEOPLATEFORME_TOKEN_URL"] = f"{root}/realms/geoplateforme/protocol/openid-connect/token"
        env["BROKER_GEOPLATEFORME_CSW_URL"] = f"{root}/csw"
        env["BROKER_GEOPLATEFORME_EMULATOR"] = "true"
    return env


# ---------------------------------------------------------------------------------------------- output


def _say(text: str = "") -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _log(text: str) -> None:
    sys.stderr.write(f"broker up [{time.strftime('%H:%M:%S')}]: {text}\n")
    sys.stderr.flush()


def _prefixed_tail(name: str, path: Path, lines: int = 12) -> str:
    text = tail(path, lines)
    if not text:
        return f"  [{name}] (nothing in {path})"
    return "\n".join(f"  [{name}] {line}" for line in text.splitlines())


# ---------------------------------------------------------------------------------------------- lock


class _AlreadyRunning(Exception):
    pass


class _DataDirLock:
    """An exclusive ``flock`` on ``run/up.lock``: one `broker up` per data directory."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.handle: IO[str] | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            handle = self.path.open("a+")
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                owner = handle.read().strip() or "?"
                handle.close()
                raise _AlreadyRunning(owner) from None
            # The previous owner may have removed the file between our open and our lock: lock the live file.
            try:
                same = os.fstat(handle.fileno()).st_ino == self.path.stat().st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            handle.close()
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self.handle = handle

    def release(self) -> None:
        if self.handle is None:
            return
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        self.handle.close()
        self.handle = None


# ---------------------------------------------------------------------------------------------- children


class _GiveUp(Exception):
    pass


class _Child:
    def __init__(self, spec: ChildSpec, env: dict[str, str], log_dir: Path) -> None:
        self.spec = spec
        self.env = {**env, **spec.env}
        self.log_path = log_dir / f"{spec.name}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.failures = 0
        self.started_at = 0.0
        self.restart_at: float | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            log.write(
                f"\n=== broker up: starting {self.spec.name} at {time.strftime('%F %T')} ===\n".encode()
            )
            log.flush()
            self.process = subprocess.Popen(
                self.spec.cmd,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=parent_death_signal(),
                cwd=self.spec.cwd,
            )
        self.started_at = time.monotonic()
        self.restart_at = None


class _Supervisor:
    def __init__(
        self,
        data_dir: Path,
        ports: Ports,
        specs: list[ChildSpec],
        env: dict[str, str],
        redis: RedisServer | None,
        stop_timeout: float,
    ) -> None:
        self.data_dir = data_dir
        self.ports = ports
        self.log_dir = data_dir / "logs"
        self.children = [_Child(spec, env, self.log_dir) for spec in specs]
        self.redis = redis
        self.redis_failures = 0
        self.stop_timeout = stop_timeout
        self.stopping = False
        self.forced = False
        self.state_path = data_dir / "run" / "up.json"
        self._next_reap = 0.0

    # -- signals
    def on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self.stopping:
            self.forced = True  # a second Ctrl-C: do not wait for graceful exits
        self.stopping = True

    # -- state file, for operators and tests
    def write_state(self) -> None:
        state: dict[str, Any] = {
            "pid": os.getpid(),
            "data_dir": str(self.data_dir),
            "api_url": self.ports.api_url,
            "dashboard_url": self.ports.dashboard_url,
            "redis_url": self.redis.url if self.redis else None,
            "redis_pid": self.redis.pid if self.redis else None,
            "children": {child.spec.name: child.pid for child in self.children if child.alive()},
        }
        temporary = self.state_path.with_suffix(".tmp")
        temporary.write_text(json.dumps(state, indent=2) + "\n")
        temporary.replace(self.state_path)

    def start_all(self) -> None:
        for child in self.children:
            if self.stopping:
                return
            child.start()
        self.write_state()

    # -- supervision
    @staticmethod
    def _backoff(failures: int) -> float:
        return float(min(2 ** (failures - 1), 30))

    def check(self) -> None:
        """One supervision round: notice dead children, restart those whose back-off elapsed."""
        changed = False
        now = time.monotonic()
        if self.redis is not None and not self.redis.alive() and not self.stopping:
            self.redis_failures += 1
            if self.redis_failures > 5:
                raise _GiveUp(f"embedded Redis keeps dying; see {self.redis.log_path}")
            _log(
                f"embedded Redis (pid {self.redis.pid}) exited with code {self.redis.process.returncode}; "
                f"restarting it on port {self.redis.port}"
            )
            try:
                self.redis.restart()
                changed = True
            except RedisServerError as error:
                raise _GiveUp(f"cannot restart the embedded Redis: {error}") from error
        for child in self.children:
            if self.stopping:
                return
            if child.process is None or child.alive():
                continue
            if child.restart_at is None:
                code = child.process.returncode
                if now - child.started_at > 60:
                    child.failures = 0  # it ran a while: a fresh incident, not a crash loop
                child.failures += 1
                if child.failures > child.spec.max_restarts:
                    raise _GiveUp(
                        f"{child.spec.name} exited {child.failures} times in a row (last code {code}); "
                        f"see {child.log_path}\n{_prefixed_tail(child.spec.name, child.log_path)}"
                    )
                delay = self._backoff(child.failures)
                child.restart_at = now + delay
                _log(
                    f"{child.spec.name} (pid {child.pid}) exited unexpectedly with code {code}; "
                    f"restarting in {delay:.0f} s (attempt {child.failures}/{child.spec.max_restarts}). "
                    f"Last lines of {child.log_path}:\n{_prefixed_tail(child.spec.name, child.log_path)}"
                )
            elif now >= child.restart_at:
                child.start()
                _log(f"{child.spec.name} restarted (pid {child.pid})")
                changed = True
        if now >= self._next_reap:  # scanning /proc is not free: every few seconds is plenty
            self._next_reap = now + 5.0
            self._reap_adopted()
        if changed:
            self.write_state()

    def _known_pids(self) -> set[int]:
        known = {child.pid for child in self.children if child.pid is not None}
        if self.redis is not None:
            known.add(self.redis.pid)
        return known

    def _adopted(self) -> list[int]:
        """Orphans re-parented to us (we are a child subreaper), e.g. the pool of a crashed worker."""
        me = os.getpid()
        known = self._known_pids()
        adopted = []
        for pid in descendants(me):
            if pid in known:
                continue
            try:
                stat = Path(f"/proc/{pid}/stat").read_text()
            except OSError:
                continue
            if int(stat[stat.rfind(")") + 2 :].split()[1]) == me:
                adopted.append(pid)
        return adopted

    def _reap_adopted(self) -> None:
        for pid in self._adopted():
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)

    def wait_healthy(self, timeout: float) -> bool:
        urls = [(child, child.spec.health_url) for child in self.children if child.spec.health_url]
        deadline = time.monotonic() + timeout
        pending = dict(urls)
        logging.getLogger("httpx").setLevel(logging.WARNING)  # no log line per health probe
        with httpx.Client(timeout=2.0, trust_env=False) as client:
            while pending:
                if self.stopping:
                    return False
                self.check()
                for child, url in list(pending.items()):
                    if url is None or not child.alive():
                        continue
                    with contextlib.suppress(httpx.HTTPError):
                        if client.get(url).status_code == 200:
                            del pending[child]
                if not pending:
                    break
                if time.monotonic() > deadline:
                    for child in pending:
                        last = _prefixed_tail(child.spec.name, child.log_path)
                        _log(
                            f"{child.spec.name} not healthy after {timeout:.0f} s ({child.spec.health_url}). "
                            f"Last lines of {child.log_path}:\n{last}"
                        )
                    return False
                time.sleep(0.2)
        return True

    def supervise(self) -> None:
        while not self.stopping:
            self.check()
            time.sleep(0.5)

    def stop_all(self) -> None:
        """SIGTERM every child, wait up to ``stop_timeout``, then SIGKILL what is left (whole trees)."""
        self.stopping = True
        running = [child for child in self.children if child.alive()]
        trees = {child.spec.name: descendants(child.pid) for child in running if child.pid is not None}
        for child in reversed(running):
            assert child.process is not None
            with contextlib.suppress(ProcessLookupError):
                child.process.send_signal(child.spec.stop_signal)
        deadline = time.monotonic() + (0 if self.forced else self.stop_timeout)
        while any(child.alive() for child in running) and time.monotonic() < deadline and not self.forced:
            time.sleep(0.1)
        for child in running:
            assert child.process is not None
            if child.alive():
                _log(f"{child.spec.name} (pid {child.pid}) did not stop in time: killing it")
                kill_tree(child.process.pid, signal.SIGKILL)
            child.process.wait()
        # Grandchildren that outlived their parent (worker pool processes, ...).
        leftovers = [pid for pids in trees.values() for pid in pids] + self._adopted()
        for pid in leftovers:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        for pid in self._adopted():
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)


# ---------------------------------------------------------------------------------------------- helpers


def _port_free(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _become_subreaper() -> None:
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def _run_once(
    name: str, cmd: Sequence[str], env: dict[str, str], log_path: Path, is_stopping: Callable[[], bool]
) -> int | None:
    """Run a one-shot command (logs to ``log_path``); None when interrupted by a stop request."""
    with log_path.open("ab") as log:
        log.write(f"\n=== broker up: {name} at {time.strftime('%F %T')} ===\n".encode())
        log.flush()
        process = subprocess.Popen(
            list(cmd),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=parent_death_signal(),
        )
    while process.poll() is None:
        if is_stopping():
            process.terminate()
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                kill_tree(process.pid)
                process.wait()
            return None
        time.sleep(0.1)
    return process.returncode


def _banner(ports: Ports, data_dir: Path, dashboard: bool, redis_url: str, embedded_redis: bool) -> str:
    api = ports.api_url
    if dashboard:
        board = ports.dashboard_url
    else:
        board = "non démarré : dashboard/app.py absent / not started: dashboard/app.py is missing"
    queue = "embarquée / embedded" if embedded_redis else "BROKER_REDIS_URL"
    rows = [
        ("API", api),
        ("Documentation OpenAPI / OpenAPI docs", f"{api}/docs  ({api}/openapi.json)"),
        ("Tableau de bord / Dashboard", board),
        ("Répertoire de données / Data directory", str(data_dir)),
        ("Journaux / Logs", str(data_dir / "logs")),
        (f"File de messages / Queue ({queue})", redis_url),
    ]
    width = max(len(label) for label, _ in rows) + 2
    lines = ["", "Courtier OPenIG prêt / OPenIG broker ready"]
    lines += [f"  {label.ljust(width)}{value}" for label, value in rows]
    lines += [
        "  Obtenir un jeton / Get a token (dans un autre terminal / in another terminal):",
        f"    broker token issue --role staff --data-dir {data_dir}",
        f'    broker org add SLUG --name "Nom de l\'organisation" --data-dir {data_dir}',
        f"    broker token issue --org SLUG --role producer --data-dir {data_dir}",
        "  Arrêt / Stop: Ctrl+C",
        "",
    ]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- entry point


def run_up(
    data_dir: Path,
    api_port: int,
    dashboard_port: int,
    host: str = "127.0.0.1",
    categories: Path | None = None,
    extra_env: dict[str, str] | None = None,
    *,
    children: Callable[[Settings, Ports], list[ChildSpec]] = embedded_children,
    migrate_cmd: Sequence[str] | None = (*BROKER_CMD, "db", "upgrade"),
    health_timeout: float = 60.0,
    stop_timeout: float = 8.0,
) -> int:
    """Run the broker on one machine until SIGINT/SIGTERM; returns the process exit code (0 after a stop).

    ``children`` and ``migrate_cmd`` (None: no migration step) exist so tests can supervise stand-ins.
    """
    data_dir = Path(data_dir).expanduser().resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    extra = dict(extra_env or {})
    overrides: dict[str, Any] = {"data_dir": data_dir}
    if categories is not None:
        overrides["categories"] = Path(categories).expanduser().resolve()
    settings = Settings(**overrides)
    run_dir = settings.run_dir
    log_dir = data_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    emulate = settings.emulators and children is embedded_children
    ports = Ports(
        host=host,
        api=api_port,
        dashboard=dashboard_port,
        datagouv=free_port() if emulate and not settings.datagouv_url else None,
        geoplateforme=free_port() if emulate and not settings.geoplateforme_api_url else None,
    )
    extra = {**national_emulator_env(settings, ports), **extra}

    lock = _DataDirLock(run_dir / "up.lock")
    try:
        lock.acquire()
    except _AlreadyRunning as running:
        _log(
            f"un autre `broker up` utilise déjà {data_dir} (pid {running}) / "
            f"another `broker up` already runs on {data_dir} (pid {running})"
        )
        return 1

    specs = children(settings, ports)
    for port, what in ((api_port, "API"), (dashboard_port, "dashboard")):
        needed = what == "API" or any(spec.name == "dashboard" for spec in specs)
        if needed and not _port_free(host, port):
            _log(f"le port {port} ({what}) est déjà pris / port {port} ({what}) is already in use on {host}")
            lock.release()
            return 1

    supervisor: _Supervisor | None = None
    redis: RedisServer | None = None
    stop_requested = {"flag": False}

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop_requested["flag"] = True
        if supervisor is not None:
            supervisor.on_signal(signum, frame)

    previous: dict[int, Any] = {}
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        with contextlib.suppress(ValueError):  # not the main thread: the caller handles signals
            previous[signum] = signal.signal(signum, on_signal)
    _become_subreaper()
    code = 0
    try:
        redis_url = extra.get("BROKER_REDIS_URL") or settings.redis_url
        if not redis_url:
            try:
                redis = RedisServer.start(data_dir)
            except RedisServerError as error:
                _log(f"impossible de démarrer Redis / cannot start the embedded Redis: {error}")
                return 1
            redis_url = redis.url
            _log(f"embedded Redis on {redis.url} (pid {redis.pid}), data in {redis.redis_dir}")
        explicit_public = extra.get("BROKER_PUBLIC_URL") or (
            settings.public_url if "public_url" in settings.model_fields_set else None
        )
        env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "BROKER_DATA_DIR": str(data_dir),
            "BROKER_PUBLIC_URL": explicit_public or ports.api_url,
            **extra,
            "BROKER_REDIS_URL": redis_url,
        }
        if categories is not None:
            env["BROKER_CATEGORIES"] = str(settings.categories)

        if migrate_cmd is not None:
            _log("applying database migrations (broker db upgrade)")
            result = _run_once(
                "migrate", migrate_cmd, env, log_dir / "migrate.log", lambda: stop_requested["flag"]
            )
            if result is None:
                return 0
            if result != 0:
                _log(
                    f"`broker db upgrade` failed with code {result}:\n"
                    f"{_prefixed_tail('migrate', log_dir / 'migrate.log')}"
                )
                return 1

        supervisor = _Supervisor(data_dir, ports, specs, env, redis, stop_timeout)
        if stop_requested["flag"]:
            return 0
        try:
            supervisor.start_all()
            if not supervisor.wait_healthy(health_timeout):
                if supervisor.stopping:
                    return 0
                _log("le courtier n'a pas démarré / the broker did not become healthy; stopping")
                return 1
            dashboard = any(spec.name == "dashboard" for spec in specs)
            if not dashboard:
                _log("dashboard/app.py not found: the dashboard is not started")
            _say(_banner(ports, data_dir, dashboard, redis_url, redis is not None))
            for name, emulator_port in (
                ("data.gouv.fr", ports.datagouv),
                ("Géoplateforme", ports.geoplateforme),
            ):
                if emulator_port is not None:
                    _say(
                        f"  {name} : aucun identifiant configuré, émulateur local sur le port "
                        f"{emulator_port} (chaque organisation y est provisionnée au premier envoi) / "
                        f"no credentials: local emulator"
                    )
            supervisor.supervise()
            _log("stopping / arrêt en cours")
        except _GiveUp as error:
            _log(f"giving up: {error}")
            code = 1
        return code
    finally:
        if supervisor is not None:
            supervisor.stop_all()
        if redis is not None:
            redis.stop()
        for path in (run_dir / "up.json", run_dir / "up.tmp"):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        lock.release()
        for number, handler in previous.items():
            signal.signal(number, handler)
