"""A throwaway Herald fleet for the Ansible tests: three Debian bookworm containers running systemd.

    db1   private network only            Redis + PostgreSQL
    app1  public + private networks       nginx → uWSGI/daphne, Celery (beat here)
    app2  public + private networks       nginx → uWSGI/daphne, Celery
    app3  like app2, started later by the add-a-host test (Fleet.add_host)

Only SSH (every host) and HTTPS (app hosts) are published, on 127.0.0.1. Ansible reaches the hosts
through those SSH ports with a key made for this run, exactly as it reaches real hosts. Everything the
fleet creates carries the label herald.fleet=<run id> and the name prefix <run id>-, and is removed
by stop() (set HERALD_FLEET_KEEP=1 to keep the hosts for a post-mortem).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
IMAGE = os.environ.get("HERALD_HOST_IMAGE", "herald/systemd-host:bookworm")
INVENTORY_DIR = ROOT / "ansible" / "inventories" / "test"
# The flags that run systemd as PID 1 under this Docker engine (../shared/brief/environment.md).
SYSTEMD_FLAGS = [
    "--cap-add", "SYS_ADMIN", "--security-opt", "seccomp=unconfined", "--cgroupns=host",
    "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw", "--tmpfs", "/run", "--tmpfs", "/run/lock",
]


def run(cmd: list[str], check: bool = True, timeout: float = 600, **kwargs) -> subprocess.CompletedProcess:
    """Run a command, capture its output, and fail with that output when it fails."""
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kwargs)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} exited {proc.returncode}\n"
            f"--- stdout\n{proc.stdout[-6000:]}\n--- stderr\n{proc.stderr[-4000:]}"
        )
    return proc


@dataclass
class Host:
    name: str
    container: str
    groups: list[str]
    ssh_port: int = 0
    https_port: int = 0
    private_ip: str = ""
    public_ip: str = ""

    def sh(self, script: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        """Run a bash script inside the host as root."""
        return run(["docker", "exec", self.container, "bash", "-c", script], check=check, timeout=timeout)


@dataclass
class Fleet:
    run_id: str = field(default_factory=lambda: f"heraldfleet-{os.getpid()}-{secrets.token_hex(2)}")
    hosts: dict[str, Host] = field(default_factory=dict)
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="herald-fleet-")))
    secrets: dict[str, str] = field(default_factory=dict)
    started: list[str] = field(default_factory=list)
    networks: list[str] = field(default_factory=list)

    @property
    def private_net(self) -> str:
        return f"{self.run_id}-private"

    @property
    def public_net(self) -> str:
        return f"{self.run_id}-public"

    @property
    def key(self) -> Path:
        return self.workdir / "id_ed25519"

    def app_hosts(self) -> list[Host]:
        return [h for h in self.hosts.values() if "app" in h.groups]

    # ---- lifecycle ---------------------------------------------------------------------------------
    def start(self) -> None:
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", self.run_id, "-f", str(self.key)])
        (self.workdir / "authorized_keys").write_text((self.workdir / "id_ed25519.pub").read_text())
        (self.workdir / "authorized_keys").chmod(0o600)
        for net in (self.private_net, self.public_net):
            run(["docker", "network", "create", "--label", f"herald.fleet={self.run_id}", net])
            self.networks.append(net)
        specs = [
            Host("db1", f"{self.run_id}-db1", ["redis", "postgresql"]),
            Host("app1", f"{self.run_id}-app1", ["app"]),
            Host("app2", f"{self.run_id}-app2", ["app"]),
        ]
        with ThreadPoolExecutor(len(specs)) as pool:
            list(pool.map(self._start_host, specs))
        for host in specs:
            self.hosts[host.name] = host
        with ThreadPoolExecutor(len(specs)) as pool:
            list(pool.map(self._wait_ssh, specs))
        self.secrets = {
            "vault_herald_secret_key": secrets.token_urlsafe(48),
            "vault_herald_redis_password": secrets.token_urlsafe(24),
            "vault_herald_db_password": secrets.token_urlsafe(24),
        }
        self.write_inventory()

    def add_host(self, name: str, groups: list[str]) -> Host:
        """One more host from the same image on the fleet's networks, added to the inventory (same
        secrets): what an operator does before the runbook's add-a-host commands."""
        host = Host(name, f"{self.run_id}-{name}", groups)
        self._start_host(host)
        self._wait_ssh(host)
        self.hosts[name] = host
        self.write_inventory()
        return host

    def attach(self) -> None:
        """Use the hosts of an earlier run kept with HERALD_FLEET_KEEP=1 (debugging: set
        HERALD_FLEET_REUSE=<run id>:<work dir>, printed when that run ended); secrets come from its inventory."""
        for host in (Host("db1", f"{self.run_id}-db1", ["redis", "postgresql"]),
                     Host("app1", f"{self.run_id}-app1", ["app"]),
                     Host("app2", f"{self.run_id}-app2", ["app"]),
                     Host("app3", f"{self.run_id}-app3", ["app"])):
            if host.name == "app3" and run(["docker", "inspect", host.container], check=False).returncode != 0:
                continue  # added by test_add_app_host only
            self._inspect(host)
            self.hosts[host.name] = host
        self.started = []  # not ours to remove
        text = INVENTORY_DIR.joinpath("hosts.yml").read_text()
        self.secrets = {k: json.loads(v) for k, v in re.findall(r"^    (vault_\w+): (.*)$", text, re.M)}

    def _inspect(self, host: Host) -> None:
        is_app = "app" in host.groups
        info = json.loads(run(["docker", "inspect", host.container]).stdout)[0]
        nets = info["NetworkSettings"]["Networks"]
        host.private_ip = nets[self.private_net]["IPAddress"]
        host.public_ip = nets[self.public_net]["IPAddress"] if is_app else ""
        ports = info["NetworkSettings"]["Ports"]
        host.ssh_port = int(ports["22/tcp"][0]["HostPort"])
        if is_app:
            host.https_port = int(ports["443/tcp"][0]["HostPort"])

    def _start_host(self, host: Host) -> None:
        is_app = "app" in host.groups
        cmd = [
            "docker", "run", "-d", "--name", host.container, "--hostname", host.name,
            "--label", f"herald.fleet={self.run_id}",
            "--network", self.public_net if is_app else self.private_net,
            *SYSTEMD_FLAGS,
            "-v", f"{self.workdir / 'authorized_keys'}:/root/.ssh/authorized_keys:ro",
            "-p", "127.0.0.1::22",
        ]
        if is_app:
            cmd += ["-p", "127.0.0.1::443"]
        run([*cmd, IMAGE])
        self.started.append(host.container)
        if is_app:
            run(["docker", "network", "connect", self.private_net, host.container])
        self._inspect(host)

    def _wait_ssh(self, host: Host, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            proc = run(self.ssh_cmd(host, "true"), check=False, timeout=20)
            if proc.returncode == 0:
                return
            last = proc.stderr
            time.sleep(1)
        raise AssertionError(f"{host.name}: no SSH after {timeout}s: {last}")

    def ssh_cmd(self, host: Host, command: str) -> list[str]:
        return [
            "ssh", "-i", str(self.key), "-p", str(host.ssh_port), "-o", "StrictHostKeyChecking=no",
            "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=5",
            "-o", "BatchMode=yes", "root@127.0.0.1", command,
        ]

    def write_inventory(self) -> None:
        """ansible/inventories/test/hosts.yml for this run (git-ignored; group_vars are committed)."""
        lines = ["# Written by tests/ansible/fleet.py for run " + self.run_id, "all:", "  vars:"]
        lines += [f"    {k}: {json.dumps(v)}" for k, v in self.secrets.items()]
        lines += ["  hosts:"]
        for host in self.hosts.values():
            lines += [
                f"    {host.name}:",
                "      ansible_host: 127.0.0.1",
                f"      ansible_port: {host.ssh_port}",
                f"      fleet_private_address: {host.private_ip}",
            ]
        lines += ["  children:"]
        for group in ("redis", "postgresql", "app"):
            lines += [f"    {group}:", "      hosts:"]
            lines += [f"        {h.name}:" for h in self.hosts.values() if group in h.groups]
        INVENTORY_DIR.joinpath("hosts.yml").write_text("\n".join(lines) + "\n")

    def stop(self) -> None:
        if os.environ.get("HERALD_FLEET_KEEP") == "1":
            print(f"\nHERALD_FLEET_KEEP=1: fleet left running; HERALD_FLEET_REUSE={self.run_id}:{self.workdir}")
            return
        for container in self.started:
            run(["docker", "rm", "-f", "-v", container], check=False)
        for net in self.networks:
            run(["docker", "network", "rm", net], check=False)
        shutil.rmtree(self.workdir, ignore_errors=True)

    # ---- operator commands (the runbook's, verbatim) ----------------------------------------------
    def env(self, **extra: str) -> dict[str, str]:
        env = dict(os.environ)
        env.pop("HERALD_URL", None)
        env.pop("HERALD_TOKEN", None)
        env.update({"ANSIBLE_PRIVATE_KEY_FILE": str(self.key), "ANSIBLE_FORCE_COLOR": "0",
                    "ANSIBLE_NOCOLOR": "1", "PY_COLORS": "0"})
        env.update(extra)
        return env

    def make(self, *args: str, check: bool = True, timeout: float = 900, **env: str) -> subprocess.CompletedProcess:
        """`make <target> ENV=test ...` from the repository root, as the runbook says."""
        return run(["make", "--no-print-directory", *args, "ENV=test"], check=check, timeout=timeout,
                   cwd=ROOT, env=self.env(**env))


RECAP = re.compile(r"^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)


def recap(output: str) -> dict[str, dict[str, int]]:
    """PLAY RECAP lines → {host: {ok, changed, unreachable, failed}}."""
    return {
        m[1]: {"ok": int(m[2]), "changed": int(m[3]), "unreachable": int(m[4]), "failed": int(m[5])}
        for m in RECAP.finditer(output)
    }


def changed_tasks(output: str) -> list[str]:
    """Task headers followed by a `changed:` line, for a readable idempotence failure."""
    found, task = [], ""
    for line in output.splitlines():
        if line.startswith("TASK [") or line.startswith("RUNNING HANDLER ["):
            task = line
        elif line.startswith("changed:"):
            found.append(f"{task} → {line}")
    return found


def tcp_open(host: str, port: int, timeout: float = 2.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False
