"""manage.py create_token --name NAME [--scope deploys:write --scope deploys:read]: print a new token once."""

from django.core.management.base import BaseCommand, CommandError

from deploys.models import ApiToken


class Command(BaseCommand):
    help = "Issue an API token for a pipeline. The secret is printed once; only its hash is stored."

    def add_arguments(self, parser):
        parser.add_argument("--name", required=True, help="who uses it, e.g. 'github-actions billing-api'")
        parser.add_argument(
            "--scope", action="append", choices=ApiToken.Scope.values, help="repeat for several; default: both"
        )

    def handle(self, *args, name, scope, **options):
        try:
            _, plain = ApiToken.issue(name, scope or ApiToken.Scope.values)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(plain)
