"""Simulated hosts: Linux network namespaces behind one bridge, and the processes run in them.

Each host is a network namespace (`ip netns add`) joined to a bridge in this namespace by a veth
pair, with an address of a private /24 whose first address (the gateway) is the bridge's own.
A process on a host reaches this machine's services only through the gateway, never its loopback,
and the test process reaches each host at its address. Namespaces and links are named after this
process, so two runs on one machine never touch each other's; `close` removes them all, which
also removes their veth pairs.
"""

from __future__ import annotations

import contextlib
import ipaddress
import itertools
import os
import shutil
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path


def netns_unavailable() -> str | None:
    """Why network namespaces cannot be made here (None when they can): root and `ip` needed."""
    if shutil.which("ip") is None:
        return "the `ip` command (iproute2) is not installed"
    if os.geteuid() != 0:
        return "network namespaces (`ip netns add`) need root"
    return None


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


def _free_subnet() -> ipaddress.IPv4Network:
    """A /24 of 10.213.0.0/16 that no interface of this machine is on."""
    listed = subprocess.run(
        ["ip", "-o", "-4", "addr", "show"], check=True, capture_output=True, text=True
    ).stdout.split()
    used = [
        ipaddress.IPv4Interface(after).network
        for before, after in itertools.pairwise(listed)
        if before == "inet"
    ]
    start = os.getpid() % 250
    for n in range(250):
        subnet = ipaddress.IPv4Network(f"10.213.{(start + n) % 250}.0/24")
        if not any(subnet.overlaps(network) for network in used):
            return subnet
    raise RuntimeError("no free /24 in 10.213.0.0/16 for the simulated hosts")


@dataclass
class HostProcess:
    """A command running on a host, in a session of its own so that a kill takes its children
    (a worker's pool, an embedded beat) down with it."""

    argv: list[str]
    log: Path
    process: subprocess.Popen | None = None

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    def stop(self, timeout: float = 60) -> None:
        """SIGTERM, then SIGKILL what is left after `timeout`."""
        if self.process is None:
            return
        self._signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=timeout)
        self.kill()

    def kill(self) -> None:
        """kill -9 the process and everything in its session."""
        if self.process is not None:
            self._signal(signal.SIGKILL)
            self.process.wait()
            self.process = None

    def _signal(self, sig: int) -> None:
        assert self.process is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, sig)


@dataclass
class Host:
    """One network namespace with its own address, and the processes started on it."""

    name: str
    namespace: str
    address: str
    processes: list[HostProcess] = field(default_factory=list)

    def start(self, argv: list[str], env: dict[str, str], log: Path) -> HostProcess:
        """`argv` run inside the namespace with exactly `env`, its output appended to `log`."""
        log.parent.mkdir(parents=True, exist_ok=True)
        running = HostProcess(["ip", "netns", "exec", self.namespace, *argv], log)
        with log.open("ab") as out:
            running.process = subprocess.Popen(
                running.argv,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=log.parent,
            )
        self.processes.append(running)
        return running

    def run(self, argv: list[str], env: dict[str, str], timeout: float = 300):
        """`argv` run inside the namespace to its end: the completed process, output captured."""
        return subprocess.run(
            ["ip", "netns", "exec", self.namespace, *argv],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def stop_all(self) -> None:
        for running in self.processes:
            running.stop(timeout=20)
        self.processes.clear()


class Network:
    """A bridge in this namespace, its gateway address, and hosts added behind it."""

    def __init__(self) -> None:
        tag = f"rmh{os.getpid()}"
        self._tag = tag
        self.bridge = f"{tag}br"
        subnet = _free_subnet()
        self._addresses = subnet.hosts()
        self.gateway = str(next(self._addresses))
        self._prefix = subnet.prefixlen
        self.hosts: list[Host] = []
        _ip("link", "add", "name", self.bridge, "type", "bridge")
        _ip("addr", "add", f"{self.gateway}/{self._prefix}", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")

    def add_host(self, name: str) -> Host:
        n = len(self.hosts)
        namespace, outside, inside = f"{self._tag}-{name}", f"{self._tag}v{n}", f"{self._tag}p{n}"
        address = str(next(self._addresses))
        _ip("netns", "add", namespace)
        host = Host(name, namespace, address)
        self.hosts.append(host)
        _ip("link", "add", outside, "type", "veth", "peer", "name", inside)
        _ip("link", "set", inside, "netns", namespace)
        _ip("link", "set", outside, "master", self.bridge)
        _ip("link", "set", outside, "up")
        _ip("-n", namespace, "addr", "add", f"{address}/{self._prefix}", "dev", inside)
        _ip("-n", namespace, "link", "set", inside, "up")
        _ip("-n", namespace, "link", "set", "lo", "up")
        _ip("-n", namespace, "route", "add", "default", "via", self.gateway)
        return host

    def close(self) -> None:
        """Stop every host's processes, delete the namespaces (and their veth pairs), the
        bridge; whatever is already gone is skipped."""
        for host in self.hosts:
            host.stop_all()
            subprocess.run(["ip", "netns", "del", host.namespace], capture_output=True)
        self.hosts.clear()
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True)
