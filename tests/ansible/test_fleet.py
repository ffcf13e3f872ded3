"""The Ansible fleet on real systemd hosts: provision, idempotence, deploys, rollback, Redis exposure.

The tests share one fleet (tests/ansible/fleet.py) and run in file order, each building on the state
the previous one left: provision → deploy A → deploy B under load → broken release → rollback.
Every operator command is the runbook's (`make provision|deploy|rollback ENV=test ...`).
"""

from __future__ import annotations

import re
import secrets
import shlex
import shutil

from .client import Producer, RequestLoop, Watcher, request, start
from .fleet import IMAGE, ROOT, changed_tasks, recap, run


def test_site_converges(fleet):
    out = fleet.make("provision").stdout
    hosts = recap(out)
    assert set(hosts) == {"db1", "app1", "app2"}, out[-3000:]
    assert all(h["failed"] == 0 and h["unreachable"] == 0 for h in hosts.values()), out[-3000:]


def test_site_second_run_changes_nothing(fleet):
    out = fleet.make("provision").stdout
    hosts = recap(out)
    assert set(hosts) == {"db1", "app1", "app2"}
    assert {name: h["changed"] for name, h in hosts.items()} == {"db1": 0, "app1": 0, "app2": 0}, changed_tasks(out)


# ---- helpers for the deploy tests -------------------------------------------------------------------
def current_release(host) -> str:
    """What `current` points at, and the release the uWSGI master really runs from (its cwd)."""
    link = host.sh("readlink /srv/herald/current").stdout.strip()
    return link.rsplit("/", 1)[-1]


def uwsgi_release(fleet, host) -> str:
    script = (
        "pid=$(/srv/herald/current/.venv/bin/supervisorctl -c /etc/herald/supervisor/supervisord.conf pid uwsgi);"
        " runuser -u herald -- readlink /proc/$pid/cwd"
    )
    cwd = host.sh(script).stdout.strip()  # /srv/herald/releases/<version>/app
    return cwd.split("/")[-2]


def manage(host, *args: str) -> str:
    """`herald-manage` on an app host, as the app user (the runbook's way to run manage.py)."""
    quoted = " ".join(shlex.quote(a) for a in args)
    return host.sh(f"cd / && sudo -u herald herald-manage {quoted}", timeout=300).stdout


def healthy(host) -> bool:
    status, body = request(host.https_port, "/healthz")
    return status == 200 and body.get("status") == "ok"


SESSION_SCRIPT = """
from importlib import import_module
from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
user, _ = get_user_model().objects.get_or_create(username="fleet-watcher")
store = import_module(settings.SESSION_ENGINE).SessionStore()
store[SESSION_KEY] = str(user.pk)
store[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
store[HASH_SESSION_KEY] = user.get_session_auth_hash()
store.create()
print(store.session_key)
"""


def test_deploy_release_a(fleet):
    out = fleet.make("deploy", "VERSION=A").stdout
    assert all(h["failed"] == 0 for h in recap(out).values()), out[-3000:]
    for host in fleet.app_hosts():
        assert current_release(host) == "A"
        assert uwsgi_release(fleet, host) == "A"
        assert healthy(host)
    # supervisord started under the unit's own system call filter (it allows the chown supervisord does
    # on its socket); no drop-in changes it.
    for host in fleet.app_hosts():
        assert "herald.service.d" not in host.sh("systemctl show --property DropInPaths herald").stdout
        assert re.search(r"\bchown\b", host.sh("systemctl show --property SystemCallFilter herald").stdout)
    # Exactly one Celery beat in the fleet.
    beats = [h.name for h in fleet.app_hosts() if "beat" in h.sh(
        "/srv/herald/current/.venv/bin/supervisorctl -c /etc/herald/supervisor/supervisord.conf status").stdout]
    assert beats == ["app1"]


def test_deploy_b_under_load_loses_nothing_and_reports_itself(fleet):
    app1, app2 = fleet.app_hosts()
    token = manage(app1, "create_token", "--name", "fleet-test").strip().splitlines()[-1]
    session = manage(app1, "shell", "-c", SESSION_SCRIPT).strip().splitlines()[-1]
    watched_deploy = {"service": "fleet-watched", "environment": f"test-{secrets.token_hex(3)}", "version": "w1",
                      "started_by": "fleet test"}
    status, watched = request(app2.https_port, "/api/v1/deploys/", "POST", watched_deploy, token=token)
    assert status == 201, watched

    loop = RequestLoop([app1.https_port, app2.https_port])
    producer = Producer(app2.https_port, token, watched["id"])
    watcher = Watcher(app1.https_port, session, watched["id"])
    threads = [start(watcher)]
    assert watcher.connected.wait(60), watcher.errors
    threads += [start(loop), start(producer)]

    # The callback plugin reports this run to the fleet itself (app2's nginx), trusting its self-signed
    # certificate through HERALD_CA_FILE (the system bundle stays as it is).
    cafile = fleet.workdir / "app2.pem"
    cafile.write_text(app2.sh("cat /etc/ssl/herald/fullchain.pem").stdout)
    try:
        proc = fleet.make("deploy", "VERSION=B", HERALD_URL=f"https://127.0.0.1:{app2.https_port}",
                          HERALD_TOKEN=token, HERALD_CA_FILE=str(cafile),
                          # Two cores shared by three hosts and the load: give the last events time.
                          HERALD_REPORT_FLUSH_SECONDS="120")
        out = proc.stdout
    finally:
        loop.stop.set()
        producer.stop.set()
    threads[1].join(120)
    threads[2].join(120)
    status, _ = request(app2.https_port, f"/api/v1/deploys/{watched['id']}/finish/", "POST",
                        {"status": "succeeded"}, token=token)
    assert status == 200
    threads[0].join(120)

    for host in fleet.app_hosts():
        assert current_release(host) == "B"
        assert uwsgi_release(fleet, host) == "B"
    # Zero failed HTTP requests while both hosts rolled.
    assert loop.failures == [], loop.failures[:10]
    assert producer.failures == [], producer.failures[:10]
    assert loop.ok > 0 and producer.batches > 0
    # The watcher saw every event exactly once, in order, across at most one drop per rolled host it used.
    status, summary = request(app2.https_port, f"/api/v1/deploys/{watched['id']}/", token=token)
    assert watcher.finished.is_set(), (watcher.errors[-5:], len(watcher.seqs))
    assert watcher.seqs == list(range(1, summary["last_seq"] + 1))
    assert watcher.drops <= 1, (watcher.drops, watcher.errors[-5:])

    # The callback's report of this run is readable from Herald's API on the fleet itself.
    match = re.search(r"herald: reported as deploy (\d+) .*, succeeded", out)
    assert match, [line for line in proc.stderr.splitlines() if "herald" in line] or out[-2000:]
    status, report = request(app1.https_port, f"/api/v1/deploys/{match[1]}/", token=token)
    assert status == 200
    assert (report["service"], report["environment"], report["version"], report["status"]) == (
        "herald", "test", "B", "succeeded")
    status, events = request(app1.https_port, f"/api/v1/deploys/{match[1]}/events/?limit=1000", token=token)
    steps = {e["data"]["name"] for e in events["events"] if e["kind"] == "step"}
    lines = [e["data"]["line"] for e in events["events"] if e["kind"] == "log"]
    assert "Switch to the release behind a health gate." in steps
    assert any(line.startswith("changed: [app1]") for line in lines)
    assert any(line.startswith("app2: ok=") for line in lines)


def test_broken_release_stops_the_roll_and_keeps_the_previous_release(fleet, tmp_path):
    broken = tmp_path / "app"
    shutil.copytree(ROOT / "app", broken, ignore=shutil.ignore_patterns("__pycache__", "*.sqlite3"))
    wsgi = broken / "herald" / "wsgi.py"
    wsgi.write_text(wsgi.read_text() + '\nraise RuntimeError("deliberately broken release (fleet test)")\n')
    proc = fleet.make("deploy", "VERSION=C-broken", f"APP_SRC={broken}",
                      "ANSIBLE_ARGS=-e app_health_retries=20", check=False)
    assert proc.returncode != 0, proc.stdout[-3000:]
    assert "The roll stopped here" in proc.stdout, proc.stdout[-3000:]
    hosts = recap(proc.stdout)
    assert hosts["app1"]["failed"] == 1
    # app2 never switched: the roll stopped at app1.
    assert "app2" not in [line for line in proc.stdout.splitlines() if "Point current at the new release" in line]
    for host in fleet.app_hosts():
        assert current_release(host) == "B"
        assert uwsgi_release(fleet, host) == "B"
        assert healthy(host)


def test_rollback_returns_to_a(fleet):
    out = fleet.make("rollback").stdout
    assert all(h["failed"] == 0 for h in recap(out).values()), out[-3000:]
    for host in fleet.app_hosts():
        assert current_release(host) == "A"
        assert uwsgi_release(fleet, host) == "A"
        assert healthy(host)


def test_check_diff_on_converged_fleet_reports_no_change(fleet):
    out = fleet.make("provision", "ANSIBLE_ARGS=--check --diff").stdout
    hosts = recap(out)
    assert {name: h["changed"] for name, h in hosts.items()} == {"db1": 0, "app1": 0, "app2": 0}, changed_tasks(out)


# ---- Redis exposure ----------------------------------------------------------------------------------
RESP_SCRIPT = r"""
import socket, sys
def talk(*commands):
    s = socket.create_connection((sys.argv[1], 6379), timeout=5)
    out = []
    for cmd in commands:
        s.sendall(("*%d\r\n" % len(cmd) + "".join("$%d\r\n%s\r\n" % (len(a.encode()), a) for a in cmd)).encode())
        out.append(s.recv(4096).decode().split("\r\n")[0])
    return out
print("\t".join(talk(["PING"])))
print("\t".join(talk(["AUTH", "default", ""], ["PING"])))
print("\t".join(talk(["AUTH", "herald", sys.argv[2]], ["PING"], ["EVAL", "return 7", "0"], ["DEL", "fleet-x"],
                    ["PUBLISH", "fleet-channel", "hi"], ["CONFIG", "GET", "maxmemory"], ["FLUSHALL"])))
"""

PROBE_SCRIPT = r"""
import socket, sys
for target in sys.argv[1:]:
    host, port = target.rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=3).close()
        print(target, "open")
    except OSError as exc:
        print(target, "closed", exc.__class__.__name__)
"""


def test_redis_requires_the_acl_user_and_stays_private(fleet):
    db1, app1 = fleet.hosts["db1"], fleet.hosts["app1"]
    password = fleet.secrets["vault_herald_redis_password"]
    out = app1.sh(f"python3 -c {shlex.quote(RESP_SCRIPT)} {db1.private_ip} {shlex.quote(password)}").stdout
    no_auth, default_user, herald = out.strip().splitlines()
    assert no_auth.startswith("-NOAUTH")
    assert default_user.startswith("-WRONGPASS")  # the default user is off
    assert herald.split("\t")[:5] == ["+OK", "+PONG", ":7", ":0", ":0"]  # EVAL, DEL, PUBLISH allowed
    assert all(reply.startswith("-NOPERM") for reply in herald.split("\t")[5:])  # CONFIG, FLUSHALL denied
    # The app logs in as that same ACL user: one REDIS_URL, carrying herald_redis_user.
    for host in fleet.app_hosts():
        urls = host.sh("grep '^REDIS_URL=' /etc/herald/herald.env").stdout.splitlines()
        assert len(urls) == 1, len(urls)
        assert re.fullmatch(rf"REDIS_URL='?redis://herald:[^@]+@{re.escape(db1.private_ip)}:6379/0'?", urls[0])

    # Redis and PostgreSQL listen on loopback and the private address only.
    listeners = db1.sh("ss -Hltn '( sport = :6379 or sport = :5432 )' | awk '{print $4}'").stdout.split()
    assert sorted(listeners) == sorted(
        ["127.0.0.1:6379", f"{db1.private_ip}:6379", "127.0.0.1:5432", f"{db1.private_ip}:5432"])
    assert "maxmemory-policy noeviction" in db1.sh("cat /etc/redis/redis.conf").stdout

    # From the public network (where the app hosts' public addresses are), nothing reaches Redis or
    # PostgreSQL: not through the app hosts, not at the database host's private address.
    targets = [f"{h.public_ip}:{port}" for h in fleet.app_hosts() for port in (6379, 5432)]
    targets += [f"{db1.private_ip}:6379", f"{db1.private_ip}:5432"]
    probe = run(["docker", "run", "--rm", "--label", f"herald.fleet={fleet.run_id}", "--network", fleet.public_net,
                 "--entrypoint", "python3", IMAGE, "-c", PROBE_SCRIPT, *targets], timeout=120).stdout
    assert [line.split()[1] for line in probe.splitlines()] == ["closed"] * len(targets), probe
    # The app hosts publish only SSH and HTTPS, and only on loopback.
    for host in fleet.app_hosts():
        ports = run(["docker", "port", host.container]).stdout.split("\n")
        assert sorted(p.split(" -> ")[0] for p in ports if p) == ["22/tcp", "443/tcp"]
        assert all("127.0.0.1:" in p for p in ports if p)


# ---- Add an app host (docs/runbook.md, "add an app host") -------------------------------------------
def main_pid(host, unit: str) -> str:
    """systemd's main PID of a unit: a restart changes it."""
    return host.sh(f"systemctl show --property MainPID --value {unit}").stdout.strip()


def uwsgi_pid(host) -> str:
    return host.sh("/srv/herald/current/.venv/bin/supervisorctl -c /etc/herald/supervisor/supervisord.conf "
                   "pid uwsgi").stdout.strip()


def psql_select_1(fleet, host):
    """Log in to Herald's database from `host` as the app does (password, TCP, private address)."""
    password = shlex.quote(fleet.secrets["vault_herald_db_password"])
    return host.sh(f"PGPASSWORD={password} PGCONNECT_TIMEOUT=5 psql -h {fleet.hosts['db1'].private_ip}"
                   " -U herald -d herald -XtAc 'SELECT 1'", check=False)


def test_add_an_app_host_with_the_runbook_commands(fleet):
    db1, app1, app2 = fleet.hosts["db1"], fleet.hosts["app1"], fleet.hosts["app2"]
    running = current_release(app1)
    assert current_release(app2) == running

    def untouched_state():
        apps = {h.name: (current_release(h), main_pid(h, "herald"), uwsgi_pid(h), main_pid(h, "nginx"))
                for h in (app1, app2)}
        return apps | {"db1": (main_pid(db1, "redis-server"), main_pid(db1, "postgresql@15-main"))}

    before = untouched_state()
    app3 = fleet.add_host("app3", ["app"])
    # Until provision re-renders pg_hba on the database host, PostgreSQL refuses the new address.
    refused = psql_select_1(fleet, app3)
    assert refused.returncode != 0 and "no pg_hba.conf entry" in refused.stderr, refused.stderr

    # The runbook: `make provision ENV=…`, then `make deploy ENV=… VERSION=<running> ANSIBLE_ARGS="--limit <host>"`.
    out = fleet.make("provision").stdout
    hosts = recap(out)
    assert set(hosts) == {"db1", "app1", "app2", "app3"}, out[-3000:]
    assert all(h["failed"] == 0 and h["unreachable"] == 0 for h in hosts.values()), out[-3000:]
    assert (hosts["app1"]["changed"], hosts["app2"]["changed"]) == (0, 0), changed_tasks(out)
    db1_changes = [task.split("]")[0] for task in changed_tasks(out) if task.endswith("[db1]")]
    assert db1_changes == ["TASK [postgresql : Ensure pg_hba.conf allows only local administration and the app hosts.",
                           "RUNNING HANDLER [postgresql : Reload postgresql."], db1_changes
    assert psql_select_1(fleet, app3).stdout.strip() == "1"

    out = fleet.make("deploy", f"VERSION={running}", "ANSIBLE_ARGS=--limit app3").stdout
    hosts = recap(out)
    assert set(hosts) == {"app3"}, out[-3000:]  # the running hosts were not even contacted
    assert hosts["app3"]["failed"] == 0, out[-3000:]

    # app3 runs the fleet's release, behind its own nginx, with a working database and Redis.
    assert current_release(app3) == running
    assert uwsgi_release(fleet, app3) == running
    status, health = request(app3.https_port, "/healthz")
    assert (status, health) == (200, {"status": "ok", "checks": {"database": "ok", "redis": "ok"}})
    status, page = request(app3.https_port, "/login/", headers={"Accept": "text/html"})
    assert status == 200 and 'name="csrfmiddlewaretoken"' in page, str(page)[:500]
    css = re.search(r'href="(/static/web/css/herald[^"]*\.css)"', page)
    assert css, page[:2000]
    status, _ = request(app3.https_port, css[1])  # collectstatic ran for this host's release
    assert status == 200
    # Still exactly one Celery beat in the fleet, on the first app host.
    beats = [h.name for h in fleet.app_hosts() if "beat" in h.sh(
        "/srv/herald/current/.venv/bin/supervisorctl -c /etc/herald/supervisor/supervisord.conf status").stdout]
    assert beats == ["app1"]

    # One fleet: a token made on app3 works on app1, and a deploy created through app3 reads back
    # through app1 (one database).
    token = manage(app3, "create_token", "--name", "fleet-app3").strip().splitlines()[-1]
    status, deploy = request(app3.https_port, "/api/v1/deploys/", "POST",
                             {"service": "fleet-app3", "environment": "test", "version": running}, token=token)
    assert status == 201, deploy
    status, seen = request(app1.https_port, f"/api/v1/deploys/{deploy['id']}/", token=token)
    assert (status, seen["service"], seen["version"]) == (200, "fleet-app3", running), seen

    # Nothing on the running hosts restarted or switched: not herald, uWSGI or nginx on app1/app2,
    # not Redis or PostgreSQL (pg_hba was reloaded, not restarted).
    assert untouched_state() == before
