"""Two network namespaces joined by a veth with no leg in the host namespace, and the faults on it: the
one network lab of the fault matrix (tests/faults/) and the benchmark's real-link figures. Root only.

    SIM namespace  (simulator on 127.0.0.1:PORT)            192.0.2.1  eth0
        ||  veth: every packet of the worker's connections crosses it, so the faults are real
    WORKER namespace (watchdog + worker, talking to 127.0.0.1:PORT)  192.0.2.2  eth0

The worker accepts plain ws:// and http:// only for loopback hosts, and the simulator announces its
URLs as 127.0.0.1:PORT. So the kernel carries the worker's own sockets across the link: in the worker
namespace, nat OUTPUT rewrites 127.0.0.1:PORT to 192.0.2.1:PORT (SNAT to 192.0.2.2, route_localnet on);
in the simulator namespace, nat PREROUTING rewrites 192.0.2.1:PORT back to 127.0.0.1:PORT. No userspace
relay sits between the worker and the simulator: a DROP on the veth leaves the worker's own TCP
connection half-open, a link that goes down leaves its SYNs unrouted.

192.0.2.0/24 is TEST-NET-1 (RFC 5737): documentation only, and here it exists only on this veth.
The control API of a simulator inside is reached from a thread that joined the simulator namespace
(`Namespace.call`, `setns`), so the control path never crosses the faulty link and no packet leaves for
the host.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import ctypes
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

__all__ = [
    "SIM_ADDR",
    "WORKER_ADDR",
    "Link",
    "Namespace",
    "NetnsUnavailable",
    "ensure_tools",
    "link",
    "netem_available",
    "run",
]

SIM_ADDR = "192.0.2.1"
WORKER_ADDR = "192.0.2.2"
CLONE_NEWNET = 0x40000000
T = TypeVar("T")


class NetnsUnavailable(Exception):
    """This machine cannot run the namespace cases (not root, no `ip netns`, no iptables)."""


def run(*args: str, check: bool = True, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({result.returncode}): {result.stderr.strip()}")
    return result


def ensure_tools() -> None:
    """Root, `ip`, `tc` and iptables; installs `iptables nftables` with apt when they are missing
    (CI machines start without them). Raises NetnsUnavailable when that cannot work here."""
    if os.geteuid() != 0:
        raise NetnsUnavailable("network namespaces need root")
    for tool in ("ip", "tc"):
        if shutil.which(tool) is None:
            raise NetnsUnavailable(f"`{tool}` is not installed")
    if shutil.which("iptables") is None or shutil.which("nft") is None:
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        try:
            subprocess.run(
                ["apt-get", "update", "-qq"], env=env, capture_output=True, timeout=300, check=True
            )
            subprocess.run(
                ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "iptables", "nftables"],
                env=env,
                capture_output=True,
                timeout=300,
                check=True,
            )
        except (OSError, subprocess.SubprocessError) as exc:
            raise NetnsUnavailable(
                f"iptables/nftables missing and apt-get could not install them: {exc}"
            ) from exc
        if shutil.which("iptables") is None:
            raise NetnsUnavailable("iptables is still missing after apt-get install")


class Namespace:
    """One named network namespace (`ip netns add`), removed with every process in it."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.etc = Path("/etc/netns") / name  # `ip netns exec` bind-mounts these files over /etc
        run("ip", "netns", "add", name)
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self.ip("link", "set", "lo", "up")

    def ip(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run("ip", "-n", self.name, *args, check=check)

    def exec(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run("ip", "netns", "exec", self.name, *args, check=check)

    def prefix(self) -> list[str]:
        """Prepend to a command line to run it inside this namespace (`ip netns exec` execs, same pid)."""
        return ["ip", "netns", "exec", self.name]

    def write_etc(self, name: str, text: str) -> None:
        """/etc/NAME as processes in this namespace see it. Rewritten in place (same inode), so running
        processes, whose /etc/NAME is a bind mount of this file, see the change at once."""
        self.etc.mkdir(parents=True, exist_ok=True)
        with open(self.etc / name, "w", encoding="utf-8") as handle:
            handle.write(text)

    def iptables(self, *rule: str) -> None:
        self.exec("iptables", "-w", "5", *rule)

    def call(self, fn: Callable[..., T], *args: Any, timeout: float = 30) -> T:
        """Runs fn in a thread that joined this namespace: its sockets are this namespace's."""
        if self._executor is None:
            self._executor = concurrent.futures.ThreadPoolExecutor(
                max_workers=1,
                thread_name_prefix=f"netns-{self.name}",
                initializer=_join,
                initargs=(self.name,),
            )
        return self._executor.submit(fn, *args).result(timeout)

    def pids(self) -> list[int]:
        out = run("ip", "netns", "pids", self.name, check=False).stdout
        return [int(p) for p in out.split()]

    def delete(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, 9)
        run("ip", "netns", "del", self.name, check=False)
        shutil.rmtree(self.etc, ignore_errors=True)


def _join(name: str) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(f"/run/netns/{name}", os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, f"setns into {name}: {os.strerror(errno)}")
    finally:
        os.close(fd)


class Link:
    """The two namespaces, the veth between them, and the faults a test puts on it."""

    def __init__(self, tag: str) -> None:
        self.sim = Namespace(f"qqf-s-{tag}")
        try:
            self.worker = Namespace(f"qqf-w-{tag}")
            run(
                "ip", "link", "add", "eth0", "netns", self.sim.name, "type", "veth",
                "peer", "name", "eth0", "netns", self.worker.name,
            )  # fmt: skip
            for ns, addr in ((self.sim, SIM_ADDR), (self.worker, WORKER_ADDR)):
                ns.ip("addr", "add", f"{addr}/24", "dev", "eth0")
                ns.ip("link", "set", "eth0", "up")
                ns.exec(
                    "sysctl",
                    "-qw",
                    "net.ipv4.conf.all.route_localnet=1",
                    "net.ipv4.conf.eth0.route_localnet=1",
                )
        except BaseException:
            self.close()
            raise
        self.ports: list[int] = []
        self._local_rule_moved = False

    def forward(self, port: int, *, sim_side: bool = True) -> None:
        """127.0.0.1:port in the worker namespace reaches 127.0.0.1:port in the simulator's, over the veth.
        Without `sim_side` it reaches SIM_ADDR:port instead (where a test's own relay listens)."""
        self.worker.iptables(
            "-t", "nat", "-A", "OUTPUT", "-p", "tcp", "-d", "127.0.0.1", "--dport", str(port),
            "-j", "DNAT", "--to-destination", f"{SIM_ADDR}:{port}",
        )  # fmt: skip
        self.worker.iptables(
            "-t", "nat", "-A", "POSTROUTING", "-p", "tcp", "-d", SIM_ADDR,
            "-j", "SNAT", "--to-source", WORKER_ADDR,
        )  # fmt: skip
        if sim_side:
            self.sim.iptables(
                "-t", "nat", "-A", "PREROUTING", "-i", "eth0", "-p", "tcp", "-d", SIM_ADDR,
                "--dport", str(port), "-j", "DNAT", "--to-destination", f"127.0.0.1:{port}",
            )  # fmt: skip
        self.ports.append(port)

    # Faults ------------------------------------------------------------------------------------

    def set_link(self, up: bool) -> None:
        """The worker's own interface goes down (or up): its SYNs have no route, its sockets go quiet."""
        self.worker.ip("link", "set", "eth0", "up" if up else "down")

    def set_unreachable(self, on: bool) -> None:
        """A "network is unreachable" for the worker's connections to the simulator: its connects fail at
        once with ENETUNREACH (the seed incident's error), its established sockets' packets go nowhere.
        The worker connects to 127.0.0.1:PORT, which the local table would route before any other
        rule, so that table's rule moves behind the `unreachable` policy rules (pref 5) once."""
        if on and not self._local_rule_moved:
            self.worker.ip("rule", "add", "pref", "10", "lookup", "local")
            self.worker.ip("rule", "del", "pref", "0")
            self._local_rule_moved = True
        for port in self.ports:
            self.worker.ip(
                "rule", "add" if on else "del", "pref", "5", "to", "127.0.0.1/32",
                "ipproto", "tcp", "dport", str(port), "unreachable",
            )  # fmt: skip

    def drop_all(self) -> None:
        """Every packet between the two namespaces is dropped (a black hole on the path)."""
        self.worker.iptables("-I", "INPUT", "-i", "eth0", "-j", "DROP")
        self.worker.iptables("-I", "OUTPUT", "-d", SIM_ADDR, "-j", "DROP")

    def undrop_all(self) -> None:
        self.worker.iptables("-D", "INPUT", "-i", "eth0", "-j", "DROP")
        self.worker.iptables("-D", "OUTPUT", "-d", SIM_ADDR, "-j", "DROP")

    def set_black_hole(self, on: bool) -> None:
        """drop_all (True) or undrop_all (False): the black hole as a switch, like set_unreachable."""
        if on:
            self.drop_all()
        else:
            self.undrop_all()

    def established_ports(self) -> list[int]:
        """The worker-side ports of the TCP connections the simulator has now (seen from its side)."""
        out = self.sim.exec("ss", "-tnH", "state", "established").stdout
        ports = []
        for line in out.splitlines():
            parts = line.split()
            if len(parts) >= 4 and parts[-1].startswith(f"{WORKER_ADDR}:"):
                ports.append(int(parts[-1].rsplit(":", 1)[1]))
        return ports

    def half_open(self) -> list[int]:
        """Drops every packet of the connections established now; new connections pass. Both ends keep
        their sockets ESTABLISHED: only an application heartbeat with a deadline notices."""
        ports = self.established_ports()
        for port in ports:
            self.sim.iptables("-I", "INPUT", "-i", "eth0", "-p", "tcp", "--sport", str(port), "-j", "DROP")
            self.sim.iptables(
                "-I", "OUTPUT", "-p", "tcp", "-d", WORKER_ADDR, "--dport", str(port), "-j", "DROP"
            )
        return ports

    def loss(self, probability: float) -> None:
        """Random loss both ways (tc netem is not available here: iptables' statistic match instead)."""
        for chain, match in (("INPUT", ("-i", "eth0")), ("OUTPUT", ("-d", SIM_ADDR))):
            self.worker.iptables(
                "-I", chain, *match, "-m", "statistic", "--mode", "random",
                "--probability", f"{probability}", "-j", "DROP",
            )  # fmt: skip

    def clear_filters(self) -> None:
        for ns in (self.sim, self.worker):
            ns.iptables("-F", "INPUT")
            ns.iptables("-F", "OUTPUT")

    def slow(self, rate: str, burst: str = "8kb", latency: str = "500ms") -> None:
        """A slow link: token bucket on both ends of the veth."""
        for ns in (self.sim, self.worker):
            ns.exec("tc", "qdisc", "replace", "dev", "eth0", "root", "tbf", "rate", rate,
                    "burst", burst, "latency", latency)  # fmt: skip

    def unslow(self) -> None:
        for ns in (self.sim, self.worker):
            ns.exec("tc", "qdisc", "del", "dev", "eth0", "root", check=False)

    def close(self) -> None:
        for ns in (getattr(self, "worker", None), self.sim):
            if ns is not None:
                ns.delete()


def netem_available(ns: Namespace) -> str | None:
    """None when `tc ... netem` works in this kernel, else the reason it does not."""
    result = ns.exec("tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay", "10ms", check=False)
    if result.returncode == 0:
        ns.exec("tc", "qdisc", "del", "dev", "lo", "root", check=False)
        return None
    return result.stderr.strip() or f"tc exited {result.returncode}"


@contextlib.contextmanager
def link(tag: str) -> Iterator[Link]:
    ensure_tools()
    made = Link(tag)
    try:
        yield made
    finally:
        made.close()
