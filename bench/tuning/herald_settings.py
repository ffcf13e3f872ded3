"""Herald's own settings (herald.settings.base, as the local profile uses) with the changes the
benchmark recommends, so their effect is measured in the same run before anyone edits app/."""

from herald.settings.base import *  # noqa: F403
from herald.settings.base import DATABASES

# channels' database_sync_to_async closes and re-checks the connection around every call; with health
# checks on, each call pays an extra `SELECT 1` round trip on daphne's single database thread.
DATABASES["default"]["CONN_HEALTH_CHECKS"] = False
