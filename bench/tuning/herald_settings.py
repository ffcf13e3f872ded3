"""Herald's own settings (herald.settings.base, as the local profile uses) with the changes the
benchmark recommends, so their effect is measured in the same run before anyone edits app/."""

from herald.settings.base import *  # noqa: F403
from herald.settings.base import DATABASES

# channels' database_sync_to_async closes and re-checks the connection around every call; with health
# checks on, each call pays an extra `SELECT 1` round trip on daphne's single database thread.
DATABASES["default"]["CONN_HEALTH_CHECKS"] = False

# channels ≥ 4.2 runs `aclose_old_connections()` — a hop to the database thread — before *every*
# message a consumer handles, so each live event costs one thread round trip per subscriber (py-spy:
# ~25 % of daphne's time in fan-out). Herald's consumers only touch the database through
# database_sync_to_async, which closes stale connections itself, so the per-message hop buys nothing.
# Measured here by patching channels; the real change belongs in HeraldConsumer.dispatch (app/).
import channels.consumer  # noqa: E402


async def _skip_close_old_connections() -> None:
    return None


channels.consumer.aclose_old_connections = _skip_close_old_connections
