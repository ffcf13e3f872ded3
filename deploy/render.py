#!/usr/bin/env python3
"""Render the deploy/ templates for one profile: the local run, the image, or a preview of a host.

    python deploy/render.py --profile local --out run/etc [--vars run/local-vars.yml] [--set key=value ...]

Variables come from deploy/profiles/defaults.yml, then deploy/profiles/<profile>.yml, then each --vars
file, then each --set (YAML value; the last one wins). String values may use "{{ other_var }}"; they
are resolved the way Ansible resolves group_vars, so the same files work with Ansible's `template`
module. Only the Jinja2 features and filter names Ansible also has are used by the templates.

Writes a file only when its content changed and prints `changed:`/`ok:` per file, so running it
twice is harmless and a caller can tell whether anything needs a reload.
"""

from __future__ import annotations

import argparse
import grp
import json
import os
import pwd
import shlex
import socket
import sys
from pathlib import Path

import jinja2
import yaml

DEPLOY_DIR = Path(__file__).resolve().parent
PROFILES_DIR = DEPLOY_DIR / "profiles"


def facts(profile: str) -> dict:
    """The few host facts the templates use, under the names Ansible's setup module gives them."""
    user = pwd.getpwuid(os.getuid())
    return {
        "ansible_managed": (
            f"Rendered by deploy/render.py (profile {profile}); edit the template under deploy/, not this file."
        ),
        "ansible_user_id": user.pw_name,
        "ansible_user_uid": user.pw_uid,
        "ansible_user_gid": user.pw_gid,
        # Not an Ansible fact: the group's name, which nginx's `user` directive wants.
        "ansible_user_group": grp.getgrgid(user.pw_gid).gr_name,
        "ansible_hostname": socket.gethostname().split(".")[0],
        "ansible_processor_vcpus": os.cpu_count() or 1,
        # Not an Ansible fact: the checkout this renderer lives in (the local profile's source dir).
        "herald_checkout_dir": str(DEPLOY_DIR.parent),
    }


def load_yaml(path: Path) -> dict:
    """One variables file; an unknown profile names the file that is missing."""
    if not path.is_file():
        raise SystemExit(f"render.py: no variables file {path}")
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise SystemExit(f"render.py: {path} must hold a mapping of variables")
    return data


def parse_set(item: str) -> tuple[str, object]:
    """`key=value` from the command line; the value is YAML, so `--set herald_tls=false` is a bool."""
    key, sep, value = item.partition("=")
    if not sep or not key:
        raise SystemExit(f"render.py: --set wants key=value, got {item!r}")
    return key, yaml.safe_load(value) if value else ""


def ansible_quote(value: object) -> str:
    """Ansible's `quote` filter: shell-quote a value (env files are read by bash and systemd)."""
    return shlex.quote(str(value))


def make_env(template_dir: Path | None = None) -> jinja2.Environment:
    """A Jinja2 environment configured like Ansible's template module (trim_blocks on, strict)."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(template_dir or DEPLOY_DIR)),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )
    # Filters the templates use that Ansible has and plain Jinja2 lacks; same names, same meaning.
    env.filters["quote"] = ansible_quote
    env.filters["to_json"] = lambda value: json.dumps(value, sort_keys=True)
    env.filters["bool"] = lambda value: value if isinstance(value, bool) else str(value).lower() in (
        "1", "true", "yes", "on")
    return env


def resolve(variables: dict, env: jinja2.Environment) -> dict:
    """Expand "{{ ... }}" inside variable values until nothing changes (references may chain)."""

    def expand(value, context):
        if isinstance(value, str) and "{{" in value:
            stripped = value.strip()
            single = stripped.startswith("{{") and stripped.endswith("}}") and stripped.count("{{") == 1
            if single:
                # A value that is one expression keeps its type, as in Ansible (`"{{ port }}"` → int).
                return env.compile_expression(stripped[2:-2].strip(), undefined_to_none=False)(context)
            return env.from_string(value).render(context)
        if isinstance(value, list):
            return [expand(item, context) for item in value]
        if isinstance(value, dict):
            return {key: expand(item, context) for key, item in value.items()}
        return value

    for _ in range(10):
        expanded = {key: expand(value, variables) for key, value in variables.items()}
        if expanded == variables:
            return expanded
        variables = expanded
    raise SystemExit("render.py: variables still contain {{ }} after 10 passes (a reference loop?)")


def collect(profile: str, var_files: list[str], sets: list[str]) -> dict:
    """Facts, then defaults, then the profile, then --vars files, then --set: the last one wins."""
    variables = facts(profile)
    variables.update(load_yaml(PROFILES_DIR / "defaults.yml"))
    variables.update(load_yaml(PROFILES_DIR / f"{profile}.yml"))
    for path in var_files:
        variables.update(load_yaml(Path(path)))
    for item in sets:
        key, value = parse_set(item)
        variables[key] = value
    return variables


def render(profile: str, out: Path, var_files: list[str], sets: list[str], quiet: bool = False) -> list[Path]:
    """Render every template the profile lists into `out`; returns the files that changed."""
    env = make_env()
    variables = resolve(collect(profile, var_files, sets), env)
    secret = set(variables.get("herald_render_secret_files", []))
    changed = []
    for template, dest in variables["herald_render_files"].items():
        text = env.get_template(template).render(variables)
        target = out / dest
        target.parent.mkdir(parents=True, exist_ok=True)
        old = target.read_text() if target.exists() else None
        mode = 0o600 if dest in secret else 0o644
        if old != text:
            tmp = target.with_name(f".{target.name}.tmp")
            tmp.write_text(text)
            tmp.chmod(mode)
            tmp.replace(target)  # atomic: a reader never sees half a file
            changed.append(target)
        if not quiet:
            print(f"{'changed' if old != text else 'ok'}: {target}")
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", required=True, help="a file name under deploy/profiles/, without .yml")
    parser.add_argument("--out", required=True, type=Path, help="directory for the rendered files")
    parser.add_argument("--vars", action="append", default=[], metavar="FILE", help="extra YAML variables")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="one variable")
    parser.add_argument("--print-vars", action="store_true", help="print the resolved variables as JSON")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    if args.print_vars:
        variables = resolve(collect(args.profile, args.vars, args.set), make_env())
        print(json.dumps(variables, indent=2, sort_keys=True, default=str))
        return 0
    render(args.profile, args.out.resolve(), args.vars, args.set, args.quiet)
    return 0


if __name__ == "__main__":
    sys.exit(main())
