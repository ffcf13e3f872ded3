"""The rendered configuration is valid for every profile: nginx -t, gixy, supervisord's parser,
systemd-analyze verify and the unit's security exposure. These need no running stack."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from supervisor.options import ServerOptions

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
RENDER = [sys.executable, str(ROOT / "deploy/render.py")]
PROFILES = ["local", "production", "image"]


def render(profile: str, out: Path, *sets: str) -> str:
    proc = subprocess.run([*RENDER, "--profile", profile, "--out", str(out), *[f"--set={s}" for s in sets]],
                          capture_output=True, text=True, check=True)
    return proc.stdout


def sandbox_sets(tmp: Path) -> list[str]:
    """Point every host path into tmp, so nginx -t can open its logs and pid file as any user."""
    for name in ("run", "log", "etc", "var"):
        (tmp / name).mkdir(parents=True, exist_ok=True)
    return [f"herald_run_dir={tmp}/run", f"herald_log_dir={tmp}/log", f"herald_etc_dir={tmp}/etc",
            f"herald_var_dir={tmp}/var"]


@pytest.mark.parametrize("profile", PROFILES)
def test_every_template_renders_with_its_header_and_a_rerun_changes_nothing(profile, tmp_path):
    first = render(profile, tmp_path)
    assert first.count("changed:") >= 2 and "ok:" not in first, first
    for path in (p for p in tmp_path.rglob("*") if p.is_file()):
        head = path.read_text().splitlines()[:6]
        assert head[0].startswith("# Rendered by deploy/render.py"), (path, head[0])
        assert any("Apply a change" in line for line in head + path.read_text().splitlines()[:12]), path
    again = render(profile, tmp_path)
    assert "changed:" not in again, again


def test_local_env_file_holds_secrets_with_owner_only_mode(tmp_path):
    render("local", tmp_path, "herald_secret_key=s3cret-value", "herald_redis_password=pw-value")
    env = tmp_path / "herald.env"
    assert env.stat().st_mode & 0o077 == 0
    assert "DJANGO_SECRET_KEY=s3cret-value" in env.read_text()
    assert (tmp_path / "redis/redis.conf").stat().st_mode & 0o077 == 0


def nginx_t(conf: Path, tmp: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["nginx", "-t", "-c", str(conf), "-e", str(tmp / "log/nginx-error.log")],
                          capture_output=True, text=True)


def gixy(conf: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(VENV_BIN / "gixy"), str(conf)], capture_output=True, text=True)


def test_local_nginx_config_passes_nginx_t_and_gixy(tmp_path):
    render("local", tmp_path / "etc", *sandbox_sets(tmp_path))
    conf = tmp_path / "etc/nginx/nginx.conf"
    result = nginx_t(conf, tmp_path)
    assert result.returncode == 0, result.stderr
    result = gixy(conf)
    assert result.returncode == 0 and "Problem:" not in result.stdout, result.stdout


def test_production_nginx_config_with_tls_passes_nginx_t_and_gixy(tmp_path):
    """The production site (TLS, redirect, HSTS) inside a stand-in for Debian's nginx.conf."""
    certs = tmp_path / "tls"
    certs.mkdir()
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-subj", "/CN=herald.example.com", "-days", "1", "-keyout", str(certs / "key.pem"),
         "-out", str(certs / "cert.pem")], check=True, capture_output=True)
    render("production", tmp_path / "etc", *sandbox_sets(tmp_path),
           f"herald_nginx_site_dir={tmp_path}/etc/nginx", f"herald_nginx_snippets_dir={tmp_path}/etc/nginx",
           f"herald_tls_certificate={certs}/cert.pem", f"herald_tls_certificate_key={certs}/key.pem",
           "herald_nginx_standalone=true", "herald_user=root", "herald_group=root",
           "herald_render_files={nginx/nginx.conf.j2: nginx/nginx.conf, nginx/herald-site.conf.j2: "
           "nginx/herald-site.conf, nginx/herald-headers.conf.j2: nginx/herald-headers.conf}")
    conf = tmp_path / "etc/nginx/nginx.conf"
    site = (tmp_path / "etc/nginx/herald-site.conf").read_text()
    assert "return 301 https://" in site and "ssl_protocols TLSv1.2 TLSv1.3;" in site
    assert "Strict-Transport-Security" in (tmp_path / "etc/nginx/herald-headers.conf").read_text()
    result = nginx_t(conf, tmp_path)
    assert result.returncode == 0, result.stderr
    result = gixy(conf)
    assert result.returncode == 0 and "Problem:" not in result.stdout, result.stdout


@pytest.mark.parametrize("profile", PROFILES)
def test_supervisord_parses_the_rendered_config(profile, tmp_path):
    # The checkout stands in for the host's source directory, which the parser checks exists.
    render(profile, tmp_path, *sandbox_sets(tmp_path), f"herald_src_dir={ROOT}")
    options = ServerOptions()
    options.realize(["-c", str(tmp_path / "supervisor/supervisord.conf")])
    groups = {group.name: group for group in options.process_group_configs}
    assert {"uwsgi", "daphne", "worker", "beat", "fatal-watch"} <= set(groups)
    assert len(groups["daphne"].process_configs) == 2
    worker = groups["worker"].process_configs[0]
    # Warm shutdown: TERM to Celery's main process only (children die on a direct TERM), KILL to the group.
    assert worker.stopwaitsecs == 600 and not worker.stopasgroup and worker.killasgroup
    if profile == "image":
        assert all(pc.stdout_logfile == "/dev/stdout" and pc.stdout_logfile_maxbytes == 0
                   for g in groups.values() for pc in g.process_configs if g.name != "fatal-watch")


def test_systemd_unit_verifies_and_scores_at_most_3(tmp_path):
    """systemd-analyze verify, then the CI gate: exposure ≤ 3.0. `--threshold` counts in tenths (the
    0–100 scale behind the printed 0.0–10.0), so 3.0 is --threshold=30 (checked on systemd 252)."""
    render("production", tmp_path, f"herald_src_dir={ROOT}", f"herald_venv_dir={VENV_BIN.parent}")
    unit = tmp_path / "systemd/herald.service"
    text = unit.read_text()
    assert "KillMode=mixed" in text and "RuntimeDirectory=herald" in text
    stop_timeout = int(text.split("TimeoutStopSec=")[1].split()[0])
    assert stop_timeout >= 600, "systemd must wait longer than Celery's stopwaitsecs"
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze missing (Debian package systemd)"
    verify = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True)
    assert verify.returncode == 0, verify.stderr
    security = subprocess.run([analyze, "security", "--offline=yes", "--threshold=30", str(unit)],
                              capture_output=True, text=True)
    score_line = [line for line in security.stdout.splitlines() if "Overall exposure level" in line]
    print(score_line)
    assert security.returncode == 0, security.stdout[-2000:]


def test_fatal_listener_reports_a_crash_loop_and_can_stop_supervisord(tmp_path):
    """A program that never stays up ends FATAL; the listener logs an alert and (containers) stops
    supervisord. The config below is the minimum around the real listener script."""
    listener = ROOT / "deploy/supervisor/fatal_listener.py"
    conf = tmp_path / "supervisord.conf"
    conf.write_text(f"""
[supervisord]
nodaemon=true
logfile={tmp_path}/supervisord.log
pidfile={tmp_path}/supervisord.pid
[program:crashy]
command=/bin/false
startsecs=1
startretries=1
[eventlistener:fatal-watch]
command={sys.executable} {listener} --stop-supervisord
events=PROCESS_STATE_FATAL
stderr_logfile={tmp_path}/fatal-watch.log
""")
    proc = subprocess.Popen([str(VENV_BIN / "supervisord"), "-c", str(conf)], start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        proc.wait(timeout=60)  # exits because the listener stopped it
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    alerts = (tmp_path / "fatal-watch.log").read_text()
    assert "HERALD ALERT: crashy entered FATAL" in alerts, alerts
    assert "stopping supervisord" in alerts


def test_container_variant_uses_tcp_and_a_resolver_and_passes_nginx_t_and_gixy(tmp_path):
    """The image/compose split: uWSGI and daphne on TCP in the app container, nginx finding them by
    name through Docker's resolver, set only through variables (no post-render edits)."""
    app = tmp_path / "app"
    render("image", app, *sandbox_sets(tmp_path), f"herald_src_dir={ROOT}", "herald_uwsgi_socket=0.0.0.0:3031",
           "herald_daphne_socket=shared", "herald_daphne_bind_address=0.0.0.0")
    ini = (app / "uwsgi/herald.ini").read_text()
    assert "socket = 0.0.0.0:3031" in ini and "chmod-socket" not in ini
    assert "socket=tcp://0.0.0.0:8001" in (app / "supervisor/supervisord.conf").read_text()
    web = tmp_path / "etc"
    render("local", web, *sandbox_sets(tmp_path), "herald_nginx_resolver=127.0.0.11",
           "herald_nginx_uwsgi_pass=app:3031", "herald_nginx_daphne_pass=app:8001")
    site = (web / "nginx/herald-site.conf").read_text()
    assert "upstream herald_" not in site and "resolver 127.0.0.11 valid=5s" in site
    assert "proxy_pass http://$herald_daphne;" in site and "uwsgi_pass $herald_uwsgi;" in site
    conf = web / "nginx/nginx.conf"
    result = nginx_t(conf, tmp_path)
    assert result.returncode == 0, result.stderr
    result = gixy(conf)
    assert result.returncode == 0 and "Problem:" not in result.stdout, result.stdout
