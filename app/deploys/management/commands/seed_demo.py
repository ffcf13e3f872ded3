"""manage.py seed_demo: the demo service whose steps print coloured output for about 30 seconds."""

import sys
from pathlib import Path

from django.core.management.base import BaseCommand

from deploys.models import Environment, Service, ServiceStep

DEMO_SCRIPT = Path(__file__).resolve().parents[2] / "demo" / "demo_step.py"
DEMO_STEPS = [
    ("build", "build", 8),
    ("migrate", "migrate", 6),
    ("rollout", "rollout", 12),
    ("smoke-test", "smoke", 4),
]


class Command(BaseCommand):
    help = "Create (or refresh) the demo service and the staging/production environments."

    def handle(self, *args, **options):
        for order, slug in enumerate(["staging", "production"]):
            Environment.objects.update_or_create(slug=slug, defaults={"order": order})
        service, _ = Service.objects.update_or_create(
            slug="demo", defaults={"name": "Demo service", "description": "Prints coloured output for ~30 s."}
        )
        service.steps.all().delete()
        for position, (name, mode, seconds) in enumerate(DEMO_STEPS):
            ServiceStep.objects.create(
                service=service,
                position=position,
                name=name,
                timeout_seconds=120,
                argv=[sys.executable, str(DEMO_SCRIPT), mode, str(seconds)],
            )
        self.stdout.write(f"demo service ready with {len(DEMO_STEPS)} steps")
