"""Finding 1 of issue 24: how long `rag` takes to answer, as whole processes, as a user waits.

    python bench/cli.py [--runs 5] [--peer ../main-before]

Times `rag --help`, every command's and group's `--help`, `rag status`, `rag keys list`,
`rag deletes held` and `rag ingest MISSING` (a usage error), each started `--runs` times in a
fresh process against an empty data dir, and prints the median and the slowest run. With `--peer`,
the same commands run from another checkout (its code, this venv) in the same run, interleaved
command by command, and the ratio peer / this is printed beside each.

A command runs as `python -c "from cli.main import main; main()" ARGS` with the checkout first on
PYTHONPATH, so that the peer's code is what runs, whatever the venv's `rag` script points at.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = [
    ["--help"],
    *[
        [name, "--help"]
        for name in (
            "ingest",
            "search",
            "status",
            "serve",
            "keys",
            "up",
            "worker",
            "eval",
            "golden",
            "deletes",
            "reindex",
            "models",
        )
    ],
    ["status"],
    ["keys", "list"],
    ["deletes", "held"],
    ["ingest", "MISSING"],
]
_MAIN = "from cli.main import main; main()"


def run_once(checkout: Path, args: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", _MAIN, *args],
        cwd=checkout,
        env=env | {"PYTHONPATH": str(checkout)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=False,
    )
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--peer", type=Path, help="another checkout to time in the same run")
    args = parser.parse_args()
    checkouts = {"this": ROOT} | ({"peer": args.peer.resolve()} if args.peer else {})
    with tempfile.TemporaryDirectory() as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
        env |= {"RAG_DATA_DIR": str(Path(tmp) / "data"), "HF_HUB_OFFLINE": "1"}
        print(f"load average before: {os.getloadavg()[0]:.2f}; {args.runs} runs each")
        header = f"{'command':<22}{'median s':>10}{'max s':>8}"
        if args.peer:
            header += f"{'peer median':>13}{'peer max':>10}{'peer/this':>11}"
        print(header)
        for command in COMMANDS:
            times: dict[str, list[float]] = {name: [] for name in checkouts}
            for _ in range(args.runs):
                for name, checkout in checkouts.items():
                    times[name].append(run_once(checkout, command, env))
            this = times["this"]
            line = (
                f"{'rag ' + ' '.join(command):<22}{statistics.median(this):>10.2f}{max(this):>8.2f}"
            )
            if args.peer:
                peer = times["peer"]
                ratio = statistics.median(peer) / statistics.median(this)
                line += f"{statistics.median(peer):>13.2f}{max(peer):>10.2f}{ratio:>10.1f}x"
            print(line, flush=True)
        print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
