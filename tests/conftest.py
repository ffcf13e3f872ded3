"""Fixtures every test directory shares."""

# The production-topology stack (nginx, uWSGI, daphne ×2, Celery under supervisor, Redis), started once
# per session for the stack, browser and benchmark tests alike.
from tests.support.stack import herald_stack  # noqa: F401
