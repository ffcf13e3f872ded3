"""manage.py ensure_admin --username admin: create the first admin with a generated password.

The password is printed once, on creation; a second run finds the user and prints no secret.
"""

import secrets

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.core.management.base import BaseCommand

RELEASE_ENGINEERS = "release engineers"


def ensure_release_engineers() -> Group:
    """The group whose members may start and cancel deploys."""
    group, _ = Group.objects.get_or_create(name=RELEASE_ENGINEERS)
    group.permissions.add(Permission.objects.get(codename="start_deploy", content_type__app_label="deploys"))
    return group


class Command(BaseCommand):
    help = "Create the admin user (password printed once) and the 'release engineers' group."

    def add_arguments(self, parser):
        parser.add_argument("--username", default="admin")
        parser.add_argument("--password-file", help="also write the generated password here (mode 0600)")

    def handle(self, *args, username, password_file, **options):
        group = ensure_release_engineers()
        users = get_user_model()
        if users.objects.filter(username=username).exists():
            self.stdout.write(f"admin user {username!r} exists; password unchanged")
            return
        password = secrets.token_urlsafe(12)
        user = users.objects.create_superuser(username=username, email="", password=password)
        user.groups.add(group)
        if password_file:
            import os

            fd = os.open(password_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(password + "\n")
        self.stdout.write(f"created admin user {username!r} with password: {password}")
