"""A broker stack shared by the tests of one module (the ``broker_stack`` fixture makes one per test).

Same recipe as ``tests.fixtures.servers.broker_stack``: own data directory, own Redis database, `broker
migrate`, the API under uvicorn, optional workers and beat; stopped by PID at the end of the module.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import pytest

from broker.embedded import free_port
from tests.fixtures.servers import REPO_ROOT, Stack

BROKER = [sys.executable, "-m", "broker"]


@contextmanager
def shared_stack(
    request: pytest.FixtureRequest,
    *,
    workers: int = 0,
    beat: bool = False,
    env: Mapping[str, str] | None = None,
) -> Iterator[Stack]:
    tmp_path_factory: Any = request.getfixturevalue("tmp_path_factory")
    redis_server: Any = request.getfixturevalue("redis_server")
    redis_databases: Any = request.getfixturevalue("redis_databases")
    data_dir = tmp_path_factory.mktemp("broker-data")
    port = free_port()
    index = redis_databases.allocate()
    pythonpath = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    full_env = {key: value for key, value in os.environ.items() if not key.startswith("BROKER_")}
    full_env.update(
        {
            "PYTHONPATH": pythonpath,
            "PYTHONUNBUFFERED": "1",
            "BROKER_DATA_DIR": str(data_dir),
            "BROKER_REDIS_URL": redis_server.url_for(index),
            "BROKER_PUBLIC_URL": f"http://127.0.0.1:{port}",
            "BROKER_LOG_LEVEL": "INFO",
            "BROKER_RETRY_BASE_SECONDS": "0.2",
            "BROKER_DELIVERY_LEASE_SECONDS": "3",
            "BROKER_SWEEP_INTERVAL_SECONDS": "1",
            "BROKER_PENDING_TIMEOUT_SECONDS": "2",
            **(env or {}),
        }
    )
    stack = Stack(data_dir, full_env, port, BROKER, index)
    try:
        stack.cli("db", "upgrade", check=True, timeout=300)
        stack.start_api()
        for _ in range(workers):
            stack.add_worker()
        if beat:
            stack.start_beat()
        yield stack
    finally:
        stack.stop()
        redis_databases.flush(index)
