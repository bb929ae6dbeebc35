"""Benchmark: a big file through the tus endpoint, against a bare streaming endpoint, in the same run.

    python bench/upload.py [--size-mib 1024] [--rounds 2]

Starts the broker API (`broker api` under uvicorn, in a subprocess, on a temporary data directory, with
an organisation and a token issued by `broker token issue`) and, beside it, a minimal Starlette app under
uvicorn that streams a request body to a file (then fsyncs it, like the tus endpoint does before it
reports an offset). Sends the same bytes to both with one streaming client (httpx): a tus upload (POST
creation, then one PATCH of the whole file) and a plain PUT to the bare app. Reports the throughput of
each, their ratio (goal: tus >= 0.8 x bare), and the API process's peak resident memory while it received
the file (psutil, sampled every 20 ms in a thread; goal: < 150 MiB). Ends with one JSON line.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
RATIO_GOAL = 0.8
MEMORY_GOAL_MIB = 150
BLOCK = 1024 * 1024
ORG = "bench-org"


# --------------------------------------------------------------------------------------------- bare app


def bare_app(directory: Path) -> Any:
    """The baseline: stream the body to a file, fsync, answer 204. Nothing else."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    async def receive(request: Request) -> Response:
        target = directory / f"body-{time.monotonic_ns()}"
        with target.open("wb") as out:
            async for chunk in request.stream():
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        size = target.stat().st_size
        target.unlink()
        return Response(status_code=204, headers={"X-Received": str(size)})

    return Starlette(routes=[Route("/upload", receive, methods=["PUT"])])


def run_bare(port: int, directory: str) -> None:
    import uvicorn

    uvicorn.run(bare_app(Path(directory)), host="127.0.0.1", port=port, log_level="warning")


# --------------------------------------------------------------------------------------------- helpers


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{url}: process exited ({process.returncode})\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(url, timeout=1, trust_env=False).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"{url} not ready after {timeout} s\n{log.read_text()[-3000:]}")


def broker_command() -> list[str]:
    """`broker`, or the test shim that wires the tus router while broker/main.py does not yet."""
    import broker.main

    if "uploads" in inspect.getsource(broker.main):
        return [sys.executable, "-m", "broker"]
    return [sys.executable, "-m", "tests.broker.uploads.shim"]


class PeakRss(threading.Thread):
    def __init__(self, pid: int, interval: float = 0.02) -> None:
        super().__init__(daemon=True)
        self.process = psutil.Process(pid)
        self.interval = interval
        self.peak = 0
        self.running = True

    def run(self) -> None:
        while self.running:
            try:
                self.peak = max(self.peak, self.process.memory_info().rss)
            except psutil.Error:
                return
            time.sleep(self.interval)

    def stop(self) -> int:
        self.running = False
        self.join()
        return self.peak


def body(size: int, block: bytes) -> Iterator[bytes]:
    sent = 0
    while sent < size:
        piece = block[: min(len(block), size - sent)]
        sent += len(piece)
        yield piece


def upload_tus(client: httpx.Client, api: str, token: str, size: int, block: bytes) -> float:
    headers = {"Authorization": f"Bearer {token}", "Tus-Resumable": "1.0.0"}
    created = client.post(
        f"{api}/api/v1/uploads/", headers={**headers, "Upload-Length": str(size), "Upload-Metadata": ""}
    )
    created.raise_for_status()
    url = f"{api}{created.headers['Location']}"
    started = time.perf_counter()
    response = client.patch(
        url,
        content=body(size, block),
        headers={
            **headers,
            "Upload-Offset": "0",
            "Content-Type": "application/offset+octet-stream",
            "Content-Length": str(size),
        },
    )
    elapsed = time.perf_counter() - started
    if response.status_code != 204 or int(response.headers["Upload-Offset"]) != size:
        raise SystemExit(f"tus PATCH failed: {response.status_code} {response.text[:500]}")
    client.delete(url, headers=headers)  # free the space for the next round
    return elapsed


def upload_bare(client: httpx.Client, url: str, size: int, block: bytes) -> float:
    started = time.perf_counter()
    response = client.put(url, content=body(size, block), headers={"Content-Length": str(size)})
    elapsed = time.perf_counter() - started
    if response.status_code != 204 or int(response.headers["X-Received"]) != size:
        raise SystemExit(f"bare PUT failed: {response.status_code}")
    return elapsed


# --------------------------------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=3, help="Alternating rounds; the best of each counts.")
    parser.add_argument("--bare-server", nargs=2, metavar=("PORT", "DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare_server:
        run_bare(int(args.bare_server[0]), args.bare_server[1])
        return 0

    size = args.size_mib * BLOCK
    work = Path(tempfile.mkdtemp(prefix="bench-upload-"))
    data_dir = work / "data"
    bare_dir = work / "bare"
    bare_dir.mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("BROKER_")}
    env.update(
        {
            "BROKER_DATA_DIR": str(data_dir),
            "BROKER_LOG_LEVEL": "WARNING",
            "BROKER_MAX_UPLOAD_BYTES": str(size * 2),
            "BROKER_REDIS_URL": "redis://127.0.0.1:1/0",  # no queue needed: uploads never enqueue
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        }
    )
    command = broker_command()
    processes: list[subprocess.Popen[bytes]] = []
    try:
        subprocess.run([*command, "db", "upgrade"], env=env, check=True, capture_output=True, cwd=work)
        subprocess.run(
            [*command, "org", "add", ORG, "--name", "Banc d'essai"], env=env, check=True, capture_output=True
        )
        token = subprocess.run(
            [*command, "token", "issue", "--org", ORG, "--role", "producer"],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        api_port, bare_port = free_port(), free_port()
        api_log, bare_log = work / "api.log", work / "bare.log"
        with api_log.open("wb") as log:
            api = subprocess.Popen(
                [*command, "api", "--no-migrate", "--port", str(api_port)],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=work,
            )
        processes.append(api)
        with bare_log.open("wb") as log:
            bare = subprocess.Popen(
                [sys.executable, __file__, "--bare-server", str(bare_port), str(bare_dir)],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        processes.append(bare)
        api_url, bare_url = f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{bare_port}"
        wait_http(f"{api_url}/healthz", api, api_log)
        wait_http(f"{bare_url}/upload", bare, bare_log)

        block = os.urandom(BLOCK)
        tus_times: list[float] = []
        bare_times: list[float] = []
        with httpx.Client(timeout=600, trust_env=False) as client:
            # Warm-up (imports, first connections, JWKS) outside the measure.
            upload_tus(client, api_url, token, 8 * BLOCK, block)
            upload_bare(client, f"{bare_url}/upload", 8 * BLOCK, block)
            idle_rss = psutil.Process(api.pid).memory_info().rss
            sampler = PeakRss(api.pid)
            sampler.start()
            for _ in range(args.rounds):
                bare_times.append(upload_bare(client, f"{bare_url}/upload", size, block))
                tus_times.append(upload_tus(client, api_url, token, size, block))
            peak_rss = sampler.stop()
        mib = size / BLOCK
        tus_rate = mib / min(tus_times)
        bare_rate = mib / min(bare_times)
        ratio = tus_rate / bare_rate
        peak_mib = peak_rss / BLOCK
        print(
            f"file: {mib:.0f} MiB, {args.rounds} rounds (best of each), {platform.machine()}, "
            f"{os.cpu_count()} CPUs, Python {platform.python_version()}"
        )
        bare_list = ", ".join(f"{t:.2f}" for t in bare_times)
        tus_list = ", ".join(f"{t:.2f}" for t in tus_times)
        print(f"bare streaming endpoint : {bare_rate:8.1f} MiB/s  (times {bare_list} s)")
        print(f"tus endpoint (sha256)   : {tus_rate:8.1f} MiB/s  (times {tus_list} s)")
        print(f"ratio tus / bare        : {ratio:8.2f}   (goal >= {RATIO_GOAL})")
        idle_mib = idle_rss / BLOCK
        print(
            f"API peak RSS            : {peak_mib:8.1f} MiB (idle {idle_mib:.1f} MiB; "
            f"goal < {MEMORY_GOAL_MIB})"
        )
        result = {
            "benchmark": "upload",
            "size_mib": mib,
            "rounds": args.rounds,
            "tus_mib_s": round(tus_rate, 1),
            "bare_mib_s": round(bare_rate, 1),
            "ratio": round(ratio, 3),
            "ratio_goal": RATIO_GOAL,
            "api_peak_rss_mib": round(peak_mib, 1),
            "api_idle_rss_mib": round(idle_rss / BLOCK, 1),
            "memory_goal_mib": MEMORY_GOAL_MIB,
            "ok": ratio >= RATIO_GOAL and peak_mib < MEMORY_GOAL_MIB,
        }
        print(json.dumps(result))
        return 0 if result["ok"] else 1
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
