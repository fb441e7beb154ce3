"""Screenshot a report in headless Chromium, to check that it opens and its plots render.

    python -m eval.screenshot reports/<run id>/report.html report.png

Needs Debian's `chromium` (`apt-get install -y chromium`). The report is self-contained, so the
browser runs with networking features off and never leaves the machine.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
)


def find_chromium() -> str | None:
    return next(
        (p for n in ("chromium", "chromium-browser", "google-chrome") if (p := shutil.which(n))),
        None,
    )


def screenshot(html: Path, png: Path, width: int = 1280, height: int = 2400) -> Path:
    return screenshot_url(html.resolve().as_uri(), png, width, height)


def screenshot_url(
    url: str, png: Path, width: int = 1280, height: int = 2400, extra_flags: tuple[str, ...] = ()
) -> Path:
    """Any page; `extra_flags` e.g. `--virtual-time-budget=MS` to let its scripts run first."""
    browser = find_chromium()
    if browser is None:
        raise FileNotFoundError("no Chromium found; install it with `apt-get install -y chromium`")
    png.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(
            [
                browser,
                *_FLAGS,
                f"--user-data-dir={profile}",
                f"--screenshot={png.resolve()}",
                f"--window-size={width},{height}",
                *extra_flags,
                url,
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )
    if not png.exists():
        raise RuntimeError(f"Chromium exited without writing {png}")
    return png


def main(argv: list[str]) -> None:
    if len(argv) not in (2, 3):
        raise SystemExit("usage: python -m eval.screenshot REPORT.html OUT.png [HEIGHT]")
    height = int(argv[2]) if len(argv) == 3 else 2400
    print(screenshot(Path(argv[0]), Path(argv[1]), height=height))


if __name__ == "__main__":
    main(sys.argv[1:])
