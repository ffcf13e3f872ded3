"""The session engine (settings SESSION_ENGINE): Django's database sessions, read by a statement
written once per process.

Every page load and every socket connect reads its session. Django's db backend builds that
`Session.objects.get(session_key=…, expire_date__gt=now)` afresh each time, and compiling it was
≈ 13 % of daphne's CPU while sockets reconnected (docs/benchmarks.md, 3 December). Same table, same
rows, same expiry rule, so sessions made before the switch stay valid; saving, cycling and
deleting are Django's own.
"""

from __future__ import annotations

from django.contrib.sessions.backends import db
from django.db import connection
from django.utils import timezone

from . import sql


class SessionStore(db.SessionStore):
    def _get_session_from_db(self):
        model = self.model
        now = model._meta.get_field("expire_date").get_db_prep_value(timezone.now(), connection)
        statement = sql.select_by(model, "session_key", later_than="expire_date")
        found = sql.first(model, statement, [self.session_key, now])
        if found is None:
            self._session_key = None  # as Django's: a missing or expired session starts afresh
        return found
