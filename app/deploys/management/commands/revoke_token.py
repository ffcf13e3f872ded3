"""manage.py revoke_token KEY_ID: the token stops working at once (401 revoked_token)."""

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from deploys.models import ApiToken


class Command(BaseCommand):
    help = "Revoke an API token by its key id (the part after 'hrld_')."

    def add_arguments(self, parser):
        parser.add_argument("key_id")

    def handle(self, *args, key_id, **options):
        if not ApiToken.objects.filter(key_id=key_id, revoked_at__isnull=True).update(revoked_at=timezone.now()):
            raise CommandError(f"no active token with key id {key_id!r}")
        self.stdout.write(f"revoked {key_id}")
