"""manage.py start_demo_deploy: queue a deploy of the demo service and print its page's path."""

from django.core.management.base import BaseCommand, CommandError

from deploys import operations
from deploys.events import EventError


class Command(BaseCommand):
    help = "Queue a demo deploy (run `seed_demo` first) and print the path of its page."

    def add_arguments(self, parser):
        parser.add_argument("--environment", default="staging")
        # Not --version: Django already takes that for its own version.
        parser.add_argument("--release", default="v1.0.0", help="the version string the demo deploys")

    def handle(self, *args, environment, release, **options):
        try:
            deploy = operations.start_deploy("demo", environment, release, started_by="make run")
        except EventError as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(deploy.get_absolute_url())
