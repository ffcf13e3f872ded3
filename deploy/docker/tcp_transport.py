#!/usr/bin/env python3
"""Point rendered configs at TCP between containers instead of the host's unix sockets and loopback.

Run by: the Dockerfile's builder stage, right after `deploy/render.py --profile image|compose`.
Reads/writes: the rendered files under --out (never the templates under deploy/).
Apply a change: rebuild the images (`make image`).

On a host, nginx reaches uWSGI over {herald_run_dir}/uwsgi.sock and daphne on 127.0.0.1; in compose
they live in different containers, so uWSGI and daphne must listen on the container network and nginx
must find the `app` container by name. The templates have no variables for these three addresses yet
(requested from the bundle owner: herald_uwsgi_socket, herald_daphne_bind_address, and
herald_nginx_resolver + herald_nginx_uwsgi_pass/herald_nginx_daphne_pass). Until they do, this script
makes exactly these edits and fails the build, naming the file, when a template changed under it, so it
can never drift silently. Delete it once the variables exist and set them in profiles/image|compose.yml.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path


def replace_once(path: Path, old: str, new: str, *, regex: bool = False) -> None:
    """Replace one occurrence of `old` (text or regex) in `path`, or stop the build naming what changed."""
    text = path.read_text()
    count = len(re.findall(old, text, flags=re.S)) if regex else text.count(old)
    if count != 1:
        sys.exit(
            f"tcp_transport.py: expected exactly one {old!r} in {path} (found {count}); the template under "
            "deploy/ changed. Update deploy/docker/tcp_transport.py or use the template's new variables."
        )
    text = re.sub(old, new, text, count=1, flags=re.S) if regex else text.replace(old, new, 1)
    path.write_text(text)


def app_image(out: Path, uwsgi_port: int, daphne_port: int) -> None:
    """uWSGI and the shared daphne listener accept connections from the nginx container."""
    replace_once(
        out / "uwsgi/herald.ini",
        "socket = /run/herald/uwsgi.sock\n",
        f"# Container: nginx runs in its own container, so uwsgi protocol over TCP (deploy/docker/tcp_transport.py).\n"
        f"socket = 0.0.0.0:{uwsgi_port}\n",
    )
    # chmod-socket only means something for a unix socket; `strict` would still accept it, but it misleads.
    replace_once(out / "uwsgi/herald.ini", "chmod-socket = 660\n", "")
    replace_once(
        out / "supervisor/supervisord.conf",
        f"socket=tcp://127.0.0.1:{daphne_port}\n",
        f"; Container: nginx connects from its own container (deploy/docker/tcp_transport.py).\n"
        f"socket=tcp://0.0.0.0:{daphne_port}\n",
    )


def nginx_compose(out: Path, app_host: str, uwsgi_port: int, daphne_port: int) -> None:
    """nginx resolves the app container's name per request, so a recreated container gets no 502s."""
    site = out / "nginx/herald-site.conf"
    # The static upstream blocks resolve `app` once at startup and keep a dead IP after a restart.
    replace_once(site, r"upstream herald_uwsgi \{.*?\n\}\n\n", "", regex=True)
    replace_once(site, r"upstream herald_daphne \{.*?\n\}\n\n", "", regex=True)
    # to_uwsgi() is expanded in every location that goes to uWSGI.
    replace_all(site, "uwsgi_pass herald_uwsgi;", "uwsgi_pass $herald_uwsgi;")
    replace_once(site, "proxy_pass http://herald_daphne;", "proxy_pass http://$herald_daphne;")
    replace_once(
        site,
        "    client_max_body_size",
        "    # Compose: a variable in uwsgi_pass/proxy_pass makes nginx look the name up at request time\n"
        "    # through Docker's DNS (127.0.0.11), honouring `valid`, so a recreated app container (new IP)\n"
        "    # is found within 5 s. An upstream `server app:3031 resolve;` would do the same with a pool,\n"
        "    # but needs nginx >= 1.27.3 and Debian 12 ships 1.22 (added by deploy/docker/tcp_transport.py).\n"
        "    resolver 127.0.0.11 valid=5s ipv6=off;\n"
        "    resolver_timeout 2s;\n"
        f"    set $herald_uwsgi {app_host}:{uwsgi_port};\n"
        f"    set $herald_daphne {app_host}:{daphne_port};\n"
        "    client_max_body_size",
    )


def replace_all(path: Path, old: str, new: str) -> None:
    """Replace every occurrence of `old` (at least one must exist)."""
    text = path.read_text()
    if old not in text:
        sys.exit(f"tcp_transport.py: {old!r} not found in {path}; the template under deploy/ changed.")
    path.write_text(text.replace(old, new))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("target", choices=["app", "nginx"])
    parser.add_argument("--out", required=True, type=Path, help="the directory render.py wrote")
    parser.add_argument("--app-host", default="app", help="the app service's name on the compose network")
    parser.add_argument("--uwsgi-port", type=int, default=3031)
    parser.add_argument("--daphne-port", type=int, default=8001)
    args = parser.parse_args(argv)
    if args.target == "app":
        app_image(args.out, args.uwsgi_port, args.daphne_port)
    else:
        nginx_compose(args.out, args.app_host, args.uwsgi_port, args.daphne_port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
