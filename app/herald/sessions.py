"""The session engine (settings SESSION_ENGINE): Django's database sessions, read by a statement
written once per process.

Every page load and every socket connect reads its session. Django's db backend builds that
`Session.objects.get(session_key=…, expire_date__gt=now)` afresh each time, and compiling it was
≈ 13 % of daphne's CPU while sockets reconnected (docs/benchmarks.md, 3 December). Same table, same
rows, same expiry rule, so sessions made before the switch stay valid; saving, cycling and
deleting are Django's own. Sockets that connect together read their sessions in one statement
(decoded_many(), for herald/ws_auth.py).
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

    @classmethod
    def decoded_many(cls, keys: set[str]) -> dict[str, dict]:
        """The data of each live session among `keys`, read in one statement and decoded as load()
        decodes it; a key with no session, or an expired one, is not in the result."""
        if not keys:
            return {}
        model = cls.get_model_class()
        now = model._meta.get_field("expire_date").get_db_prep_value(timezone.now(), connection)
        statement = sql.select_by(model, "session_key", later_than="expire_date", among=len(keys))
        store = cls()
        return {row.session_key: store.decode(row.session_data) for row in sql.rows(model, statement, [*keys, now])}
