"""Making a state file private never drops the locks this process holds on it.

`private_file` opened and closed the file at its path; closing any descriptor of a file drops
every POSIX lock the process holds on it, SQLite's included. A store opened while another
thread's connection held the database's write lock took that lock away, and another process
then wrote beside it: concurrent first uses of the link key came back "database disk image is
malformed" or "disk I/O error".
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

from core.datadir import private_file

_WRITE = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], timeout=0)
try:
    conn.execute("INSERT INTO t VALUES (2)")
    conn.commit()
    print("wrote")
except sqlite3.OperationalError as exc:
    print(exc)
"""


def test_a_held_write_lock_survives_private_file(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE t (n int)")
    holder.execute("BEGIN EXCLUSIVE")
    holder.execute("INSERT INTO t VALUES (1)")
    try:
        private_file(path)  # what opening another store on the same file does
        other = subprocess.run(
            [sys.executable, "-c", _WRITE, str(path)], capture_output=True, text=True, timeout=60
        )
        assert other.stdout.strip() == "database is locked", other.stdout + other.stderr
    finally:
        holder.execute("ROLLBACK")
        holder.close()
