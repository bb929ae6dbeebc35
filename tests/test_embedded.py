"""Real tests of the embedded Redis, the `broker up` supervisor and the server fixtures (with stand-ins)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
import redis
import sqlalchemy

from broker.config import Settings
from broker.embedded import RedisServer, RedisServerError, descendants, free_port
from broker.up import BROKER_CMD, Ports, dashboard_app, embedded_children, run_up
from tests.fixtures.servers import (
    START_MARKER,
    EmbeddedPostgres,
    ProcessNotReady,
    Stack,
    http_ok,
    log_matches,
    start_process,
)

pytestmark = pytest.mark.servers


def pid_alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat[stat.rfind(")") + 2] != "Z"


def gone(pid: int) -> Callable[[], bool]:
    return lambda: not pid_alive(pid)


def wait_for(condition: Callable[[], bool], timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


# A stand-in for every process `broker up` and `broker_stack` start: a tiny HTTP server with /healthz,
# a long sleeper that owns a grandchild (like a Celery worker and its pool), a crasher, a fake `broker`.
STANDIN = textwrap.dedent(
    """
    import http.server, json, os, pathlib, subprocess, sys, time

    def serve(port):
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                if self.path == "/healthz":
                    body = {"status": "ok"}
                elif self.path == "/env":
                    body = {k: v for k, v in os.environ.items() if k.startswith(("BROKER_", "EXTRA"))}
                else:
                    self.send_response(404); self.end_headers(); return
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(data)
            def log_message(self, *args):
                pass
        http.server.HTTPServer(("127.0.0.1", port), Handler).serve_forever()

    def with_pool(ready_line):
        pool = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"])
        data = pathlib.Path(os.environ.get("BROKER_DATA_DIR", "."))
        temporary = data / f"pool-{os.getpid()}.tmp"
        temporary.write_text(str(pool.pid))
        temporary.replace(data / f"pool-{os.getpid()}")  # atomically: tests poll for it
        print(" [queues]", flush=True)
        time.sleep(0.3)
        print(ready_line, flush=True)
        time.sleep(3600)

    args = sys.argv[1:]
    command = args[0]
    if command == "api":
        serve(int(args[args.index("--port") + 1]))
    elif command == "worker":
        with_pool(f"celery@standin-{os.getpid()} ready.")
    elif command == "beat":
        print("beat: Starting...", flush=True)
        time.sleep(3600)
    elif command == "sleep":
        time.sleep(3600)
    elif command == "crash":
        print("stand-in crashing on purpose", flush=True)
        sys.exit(3)
    elif command == "db" and args[1:2] == ["upgrade"]:
        data = pathlib.Path(os.environ["BROKER_DATA_DIR"])
        (data / "migrated").write_text(os.environ.get("BROKER_DATABASE_URL", "sqlite"))
        print("migrated")
    elif command == "token":
        org = args[args.index("--org") + 1]
        role = args[args.index("--role") + 1]
        print(f"token-{org}-{role}")
    else:
        print(f"unknown stand-in command {command}", file=sys.stderr)
        sys.exit(2)
    """
)


@pytest.fixture(scope="module")
def standin(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    script = tmp_path_factory.mktemp("standin") / "standin.py"
    script.write_text(STANDIN)
    return [sys.executable, str(script)]


@pytest.fixture
def broker_command(standin: list[str]) -> list[str]:
    """In this module `broker` is the stand-in, so the fixtures are tested on their own."""
    return standin


# ------------------------------------------------------------------------------------------ embedded Redis


def test_redis_server_starts_answers_and_persists_across_restart(tmp_path: Path) -> None:
    server = RedisServer.start(tmp_path)
    try:
        assert server.url == f"redis://127.0.0.1:{server.port}/0"
        assert (tmp_path / "run" / "redis.url").read_text().strip() == server.url
        client = redis.Redis.from_url(server.url)
        assert client.ping() is True
        client.lpush("celery", "accepted message")
        client.close()
        assert (tmp_path / "redis").is_dir()
        pid = server.pid
    finally:
        server.stop()
    assert not pid_alive(pid)
    assert not (tmp_path / "run" / "redis.url").exists()

    # Same directory and port again: the append-only file brings the message back.
    again = RedisServer.start(tmp_path, port=server.port)
    try:
        assert again.pid != pid
        client = redis.Redis.from_url(again.url)
        assert client.lrange("celery", 0, -1) == [b"accepted message"]
        assert client.config_get("appendonly") == {"appendonly": "yes"}
        client.close()
    finally:
        again.stop()
    assert not pid_alive(again.pid)


def test_redis_server_on_a_taken_port_fails_with_its_log(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(RedisServerError) as error:
            RedisServer.start(tmp_path, port=port)
    assert str(port) in str(error.value)
    assert "redis.log" in str(error.value)
    assert not (tmp_path / "run" / "redis.url").exists()


def test_free_port_is_bindable() -> None:
    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def test_redis_url_fixture_gives_an_empty_database(redis_url: str, redis_server: RedisServer) -> None:
    assert redis_url.startswith(f"redis://127.0.0.1:{redis_server.port}/")
    assert not redis_url.endswith("/0")
    client = redis.Redis.from_url(redis_url)
    try:
        assert client.dbsize() == 0
        client.set("left-behind", "1")  # the next test's database must not see it
    finally:
        client.close()


def test_redis_url_fixture_is_fresh_for_each_test(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    try:
        assert client.dbsize() == 0
    finally:
        client.close()


# ------------------------------------------------------------------------------------------ process helpers


def test_start_process_waits_for_readiness_and_restarts(tmp_path: Path, standin: list[str]) -> None:
    port = free_port()
    handle = start_process(
        [*standin, "api", "--port", str(port)],
        env=None,
        log_path=tmp_path / "api.log",
        ready=http_ok(f"http://127.0.0.1:{port}/healthz"),
        timeout=30,
        name="stand-in api",
    )
    try:
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", trust_env=False).json() == {"status": "ok"}
        first = handle.pid
        handle.kill(signal.SIGKILL)
        assert not handle.alive()
        assert not pid_alive(first)
        handle.restart()
        assert handle.alive() and handle.pid != first
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", trust_env=False).status_code == 200
    finally:
        handle.stop()
    assert not handle.alive()
    assert handle.log_text().count(START_MARKER) == 2


def test_start_process_reports_the_log_tail_when_the_process_dies(tmp_path: Path, standin: list[str]) -> None:
    with pytest.raises(ProcessNotReady) as error:
        start_process([*standin, "crash"], None, tmp_path / "crash.log", ready=lambda: False, timeout=30)
    assert "exited with code 3" in str(error.value)
    assert "stand-in crashing on purpose" in str(error.value)


def test_start_process_times_out_and_stops_the_process(tmp_path: Path, standin: list[str]) -> None:
    with pytest.raises(ProcessNotReady) as error:
        start_process([*standin, "sleep"], None, tmp_path / "sleep.log", ready=lambda: False, timeout=0.5)
    assert "not ready after" in str(error.value)
    pid = int(str(error.value).split("(pid ")[1].split(")")[0])
    wait_for(lambda: not pid_alive(pid), what="the stand-in to be stopped")


def test_stop_kills_the_whole_process_group(tmp_path: Path, standin: list[str]) -> None:
    env = {**os.environ, "BROKER_DATA_DIR": str(tmp_path)}
    handle = start_process(
        [*standin, "worker"],
        env,
        tmp_path / "worker.log",
        ready=log_matches(tmp_path / "worker.log", r"ready\."),
    )
    pool = int((tmp_path / f"pool-{handle.pid}").read_text())
    assert pid_alive(pool)
    handle.stop()
    wait_for(lambda: not pid_alive(pool), what="the worker's pool process to go")


# ------------------------------------------------------------------------------------------ PostgreSQL


def test_postgres_fixture_gives_working_fresh_databases(postgres_server: EmbeddedPostgres) -> None:
    first = postgres_server.new_database()
    second = postgres_server.new_database()
    assert first != second
    assert first.startswith("postgresql+psycopg://")

    with psycopg.connect(first.replace("postgresql+psycopg://", "postgresql://")) as connection:
        assert connection.execute("SELECT 1").fetchone() == (1,)
        connection.execute("CREATE TABLE only_here (id int)")

    engine = sqlalchemy.create_engine(second)
    try:
        with engine.connect() as connection:
            assert connection.execute(sqlalchemy.text("SELECT 1")).scalar() == 1
            tables = sqlalchemy.inspect(connection).get_table_names()
            assert "only_here" not in tables
            assert str(connection.execute(sqlalchemy.text("SHOW server_version")).scalar()).startswith("18")
    finally:
        engine.dispose()
    assert pid_alive(postgres_server.pid)
    if os.geteuid() == 0:
        owner = Path(f"/proc/{postgres_server.pid}/status").read_text()
        assert "Uid:\t0\t" not in owner  # never runs as root


# ------------------------------------------------------------------------------------------ broker_stack


def test_broker_stack_runs_migrate_api_workers_and_beat(
    broker_stack: Callable[..., Stack], postgres_server: EmbeddedPostgres
) -> None:
    database_url = postgres_server.new_database()
    stack = broker_stack(database_url=database_url, workers=2, beat=True, env={"EXTRA_FLAG": "on"})
    other = broker_stack()

    assert (stack.data_dir / "migrated").read_text() == database_url
    assert (other.data_dir / "migrated").read_text() == "sqlite"
    env = stack.client().get("/env").json()
    assert env["BROKER_DATA_DIR"] == str(stack.data_dir)
    assert env["BROKER_DATABASE_URL"] == database_url
    assert env["BROKER_PUBLIC_URL"] == stack.url
    assert env["BROKER_RETRY_BASE_SECONDS"] == "0.2"
    assert env["EXTRA_FLAG"] == "on"
    assert env["BROKER_REDIS_URL"] != other.client().get("/env").json()["BROKER_REDIS_URL"]
    assert (
        stack.token("montpellier-mediterranee-metropole", "staff")
        == "token-montpellier-mediterranee-metropole-staff"
    )
    assert stack.cli("nonsense").returncode == 2

    assert len(stack.workers) == 2 and stack.beat is not None and stack.api is not None
    pools = [int((stack.data_dir / f"pool-{worker.pid}").read_text()) for worker in stack.workers]
    victim = stack.workers[0]
    victim.kill()  # the whole group, pool included: a crashed worker machine
    wait_for(lambda: not pid_alive(pools[0]), what="the killed worker's pool")
    victim.restart()
    assert victim.alive()

    handles = [stack.api, stack.beat, *stack.workers]
    pools.append(int((stack.data_dir / f"pool-{victim.pid}").read_text()))
    stack.stop()
    for pid in [handle.pid for handle in handles] + pools:
        wait_for(gone(pid), what=f"pid {pid} to stop")


# ------------------------------------------------------------------------------------------ broker up


def test_embedded_children_are_api_worker_beat_and_dashboard_when_present(tmp_path: Path) -> None:
    ports = Ports(host="127.0.0.1", api=18000, dashboard=18501)
    children = embedded_children(Settings(data_dir=tmp_path), ports)
    by_name = {child.name: child for child in children}
    assert by_name["api"].cmd == [*BROKER_CMD, "api", "--host", "127.0.0.1", "--port", "18000"]
    assert by_name["api"].health_url == "http://127.0.0.1:18000/healthz"
    assert by_name["worker"].cmd == [*BROKER_CMD, "worker", "--concurrency", "2"]
    assert by_name["beat"].cmd == [*BROKER_CMD, "beat"]
    assert ("dashboard" in by_name) == (dashboard_app() is not None)
    if "dashboard" in by_name:
        assert "--server.port" in by_name["dashboard"].cmd and "18501" in by_name["dashboard"].cmd


UP_SCRIPT = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from broker.up import ChildSpec, run_up

    standin = [sys.executable, {standin!r}]
    data_dir, api, board, mode = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]

    def children(settings, ports):
        health = f"{{ports.api_url}}/healthz"
        if mode == "crash":
            return [ChildSpec("api", [*standin, "crash"], health_url=health, max_restarts=1)]
        return [
            ChildSpec("api", [*standin, "api", "--port", str(ports.api)], health_url=health),
            ChildSpec("worker", [*standin, "worker"]),
            ChildSpec("beat", [*standin, "beat"]),
        ]

    sys.exit(run_up(data_dir, api, board, children=children, migrate_cmd=[*standin, "db", "upgrade"],
                    extra_env={{"EXTRA_FLAG": "up"}}))
    """
)


class UpProcess:
    def __init__(self, script: Path, data_dir: Path, label: str, mode: str = "normal") -> None:
        self.data_dir = data_dir
        self.api_port = free_port()
        self.out = data_dir.parent / f"{label}.out"
        self.err = data_dir.parent / f"{label}.err"
        env = {key: value for key, value in os.environ.items() if not key.startswith("BROKER_")}
        with self.out.open("wb") as out, self.err.open("wb") as err:
            self.process = subprocess.Popen(
                [sys.executable, str(script), str(data_dir), str(self.api_port), str(free_port()), mode],
                stdout=out,
                stderr=err,
                env=env,
                start_new_session=True,
            )

    def output(self) -> str:
        return self.out.read_text() + self.err.read_text()

    def state(self) -> dict:
        return json.loads((self.data_dir / "run" / "up.json").read_text())

    def wait_ready(self) -> None:
        def ready() -> bool:
            assert self.process.poll() is None, f"broker up exited early:\n{self.output()}"
            return "OPenIG broker ready" in self.out.read_text()

        wait_for(ready, timeout=60, what=f"broker up to be ready:\n{self.output()}")

    def wait(self, timeout: float = 30) -> int:
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"broker up did not exit:\n{self.output()}") from None

    def cleanup(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


@pytest.fixture
def up_script(tmp_path: Path, standin: list[str]) -> Iterator[Callable[..., UpProcess]]:
    script = tmp_path / "up_standin.py"
    script.write_text(UP_SCRIPT.format(standin=standin[1]))
    started: list[UpProcess] = []

    def start(name: str, mode: str = "normal") -> UpProcess:
        process = UpProcess(script, tmp_path / name, f"up-{len(started)}", mode)
        started.append(process)
        return process

    yield start
    for process in started:
        process.cleanup()


def test_broker_up_supervises_restarts_and_stops_everything(up_script: Callable[..., UpProcess]) -> None:
    first = up_script("first")
    second = up_script("second")  # another data directory: runs side by side
    first.wait_ready()
    second.wait_ready()

    output = first.out.read_text()
    assert f"http://127.0.0.1:{first.api_port}/docs" in output
    assert f"broker token issue --org SLUG --role producer --data-dir {first.data_dir}" in output
    assert (first.data_dir / "migrated").exists()
    assert (first.data_dir / "logs" / "api.log").exists()

    state = first.state()
    redis_url = (first.data_dir / "run" / "redis.url").read_text().strip()
    assert redis_url == state["redis_url"] != second.state()["redis_url"]
    client = redis.Redis.from_url(redis_url)
    assert client.ping()
    client.close()
    env = httpx.get(f"{state['api_url']}/env", trust_env=False).json()
    assert env["BROKER_REDIS_URL"] == redis_url
    assert env["BROKER_PUBLIC_URL"] == f"http://127.0.0.1:{first.api_port}"
    assert env["EXTRA_FLAG"] == "up"

    # The same data directory is refused while the first one runs.
    third = up_script("first")
    assert third.wait() == 1
    assert "already runs on" in third.output()
    assert first.process.poll() is None

    # A worker that dies is restarted (its pool process is not left behind).
    worker = state["children"]["worker"]
    pool_file = first.data_dir / f"pool-{worker}"
    wait_for(pool_file.exists, what="the worker's pool")
    pool = int(pool_file.read_text())
    os.kill(worker, signal.SIGKILL)

    def restarted() -> bool:
        new = first.state()["children"].get("worker")
        return new is not None and new != worker and pid_alive(new)

    wait_for(restarted, timeout=30, what="the worker to be restarted")
    assert "worker (pid" in first.err.read_text()

    # SIGTERM stops every child, the pool processes, Redis, and removes the run files.
    state = first.state()
    new_pool = first.data_dir / f"pool-{state['children']['worker']}"
    wait_for(new_pool.exists, what="the restarted worker's pool")
    pools = [pool, int(new_pool.read_text())]
    pids = [*state["children"].values(), state["redis_pid"], *pools]
    first.process.send_signal(signal.SIGTERM)
    assert first.wait() == 0
    for pid in pids:
        wait_for(gone(pid), timeout=10, what=f"pid {pid} to stop")
    run_dir = first.data_dir / "run"
    assert not (run_dir / "redis.url").exists()
    assert not (run_dir / "up.json").exists()
    assert not (run_dir / "up.lock").exists()

    assert second.process.poll() is None  # untouched by the other instance's stop
    second_pids = [*second.state()["children"].values(), second.state()["redis_pid"]]
    second.process.send_signal(signal.SIGINT)
    assert second.wait() == 0
    for pid in second_pids:
        wait_for(gone(pid), timeout=10, what=f"pid {pid} to stop")


def test_broker_up_gives_up_on_a_child_that_keeps_crashing(up_script: Callable[..., UpProcess]) -> None:
    up = up_script("crashing", mode="crash")
    assert up.wait(timeout=60) == 1
    output = up.output()
    assert "giving up" in output
    assert "stand-in crashing on purpose" in output
    assert not (up.data_dir / "run" / "redis.url").exists()
    assert not descendants(up.process.pid)


def test_broker_up_refuses_a_port_in_use(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code = run_up(tmp_path / "data", port, free_port(), migrate_cmd=None)
    assert code == 1
    assert not (tmp_path / "data" / "run" / "up.lock").exists()
