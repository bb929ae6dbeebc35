"""Run the emulator: ``python -m emulators.geoplateforme --port 8081 [--host 127.0.0.1]
[--step-seconds 0.5] [--state-dir DIR]``."""

from __future__ import annotations

import argparse
from pathlib import Path

from emulators.geoplateforme.app import run


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m emulators.geoplateforme", description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--step-seconds", type=float, default=0.5, help="time between two status changes")
    parser.add_argument("--state-dir", type=Path, default=None, help="keep the state and files here")
    args = parser.parse_args(argv)
    run(args.port, host=args.host, step_seconds=args.step_seconds, state_dir=args.state_dir)


if __name__ == "__main__":
    main()
