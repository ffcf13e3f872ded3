"""ansible-lint with the production profile passes on ansible/ (the roles, playbooks and inventories)."""

from __future__ import annotations

from .fleet import ROOT, run


def test_ansible_lint_production_profile_passes():
    proc = run([str(ROOT / ".venv/bin/ansible-lint"), "--offline", "--profile", "production", "--nocolor"],
               check=False, cwd=ROOT / "ansible", timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert "Profile 'production' was required, and it passed" in proc.stdout + proc.stderr
