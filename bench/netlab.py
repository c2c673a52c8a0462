"""Two network namespaces joined by a veth, for the recovery figures: the simulator in one, the watchdog
and worker in the other, and the faults put on the link between them.

A small copy of the pieces of tests/faults/netns.py the bench needs (the namespaces, the port
forwarding over the veth, half-open, black hole, unreachable): scripts/bench.py must not import the
tests package, and moving that module to a place both can share is a restructure of its own. Keep the
two in step (same addresses, same rules). Root only; all traffic stays inside the two namespaces.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess

SIM_ADDR = "192.0.2.1"  # TEST-NET-1 (RFC 5737): exists only on this veth
WORKER_ADDR = "192.0.2.2"


def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(args, capture_output=True, text=True, timeout=20)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({result.returncode}): {result.stderr.strip()}")
    return result


def unavailable() -> str | None:
    """Why this machine cannot run the namespace figures, or None."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    for tool in ("ip", "iptables"):
        if shutil.which(tool) is None:
            return f"`{tool}` is not installed (apt-get install iptables)"
    return None


class Lab:
    """SIM namespace (simulator on 127.0.0.1:PORT) <-veth-> WORKER namespace (talks to 127.0.0.1:PORT,
    NATed over the veth, so every packet of its connections crosses the link)."""

    def __init__(self, tag: str) -> None:
        self.sim = f"qqb-s-{tag}"
        self.worker = f"qqb-w-{tag}"
        self.ports: list[int] = []
        self._local_rule_moved = False
        try:
            for ns in (self.sim, self.worker):
                run("ip", "netns", "add", ns)
                run("ip", "-n", ns, "link", "set", "lo", "up")
            run("ip", "link", "add", "eth0", "netns", self.sim, "type", "veth",
                "peer", "name", "eth0", "netns", self.worker)  # fmt: skip
            for ns, addr in ((self.sim, SIM_ADDR), (self.worker, WORKER_ADDR)):
                run("ip", "-n", ns, "addr", "add", f"{addr}/24", "dev", "eth0")
                run("ip", "-n", ns, "link", "set", "eth0", "up")
                self.exec(ns, "sysctl", "-qw", "net.ipv4.conf.all.route_localnet=1",
                          "net.ipv4.conf.eth0.route_localnet=1")  # fmt: skip
        except BaseException:
            self.close()
            raise

    def prefix(self, ns: str) -> list[str]:
        return ["ip", "netns", "exec", ns]

    def exec(self, ns: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run(*self.prefix(ns), *args, check=check)

    def iptables(self, ns: str, *rule: str) -> None:
        self.exec(ns, "iptables", "-w", "5", *rule)

    def forward(self, port: int) -> None:
        self.iptables(self.worker, "-t", "nat", "-A", "OUTPUT", "-p", "tcp", "-d", "127.0.0.1", "--dport",
                      str(port), "-j", "DNAT", "--to-destination", f"{SIM_ADDR}:{port}")  # fmt: skip
        self.iptables(self.worker, "-t", "nat", "-A", "POSTROUTING", "-p", "tcp", "-d", SIM_ADDR,
                      "-j", "SNAT", "--to-source", WORKER_ADDR)  # fmt: skip
        self.iptables(self.sim, "-t", "nat", "-A", "PREROUTING", "-i", "eth0", "-p", "tcp",
                      "-d", SIM_ADDR, "--dport", str(port),
                      "-j", "DNAT", "--to-destination", f"127.0.0.1:{port}")  # fmt: skip
        self.ports.append(port)

    # Faults ------------------------------------------------------------------------------------

    def half_open(self) -> list[int]:
        """Drops every packet of the connections established now; new ones pass."""
        out = self.exec(self.sim, "ss", "-tnH", "state", "established").stdout
        ports = [int(p[-1].rsplit(":", 1)[1]) for p in (ln.split() for ln in out.splitlines())
                 if len(p) >= 4 and p[-1].startswith(f"{WORKER_ADDR}:")]  # fmt: skip
        for port in ports:
            self.iptables(self.sim, "-I", "INPUT", "-i", "eth0", "-p", "tcp", "--sport", str(port),
                          "-j", "DROP")  # fmt: skip
            self.iptables(self.sim, "-I", "OUTPUT", "-p", "tcp", "-d", WORKER_ADDR, "--dport", str(port),
                          "-j", "DROP")  # fmt: skip
        return ports

    def black_hole(self, on: bool) -> None:
        verb = "-I" if on else "-D"
        self.iptables(self.worker, verb, "INPUT", "-i", "eth0", "-j", "DROP")
        self.iptables(self.worker, verb, "OUTPUT", "-d", SIM_ADDR, "-j", "DROP")

    def unreachable(self, on: bool) -> None:
        """ENETUNREACH for the worker's connects to 127.0.0.1:PORT (policy rules ahead of the local table)."""
        if on and not self._local_rule_moved:
            run("ip", "-n", self.worker, "rule", "add", "pref", "10", "lookup", "local")
            run("ip", "-n", self.worker, "rule", "del", "pref", "0")
            self._local_rule_moved = True
        for port in self.ports:
            run("ip", "-n", self.worker, "rule", "add" if on else "del", "pref", "5", "to", "127.0.0.1/32",
                "ipproto", "tcp", "dport", str(port), "unreachable")  # fmt: skip

    def close(self) -> None:
        for ns in (self.worker, self.sim):
            out = run("ip", "netns", "pids", ns, check=False).stdout
            for pid in out.split():
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), 9)
            run("ip", "netns", "del", ns, check=False)
