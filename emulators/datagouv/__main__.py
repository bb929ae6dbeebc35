"""Run the emulator.

``python -m emulators.datagouv --port 8081 [--host H] [--allow-local-urls] [--read-only] [--state-dir D]``
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from emulators.datagouv.app import run


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m emulators.datagouv", description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument(
        "--allow-local-urls",
        action="store_true",
        help="accept localhost and private URLs for remote resources (URLS_ALLOW_LOCAL/PRIVATE)",
    )
    parser.add_argument("--read-only", action="store_true", help="start in read-only mode (423 on creates)")
    parser.add_argument("--state-dir", type=Path, default=None, help="persist the state here (JSON + files)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    run(
        args.port,
        host=args.host,
        allow_local_urls=args.allow_local_urls,
        state_dir=args.state_dir,
        read_only=args.read_only,
    )


if __name__ == "__main__":
    main()
