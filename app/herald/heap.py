"""Keeps Python's cyclic garbage collector off the objects a server process starts with.

A full collection walks every tracked object. Right after start-up a uWSGI worker or a daphne holds
about 100,000 of them (Django, the apps, Celery; Twisted and autobahn in daphne), and collecting them
costs ≈ 50 ms of CPU here. Requests that hold many objects at once — a 1,000-event batch is parsed,
validated, copied and published as several thousand dicts — promote enough survivors to set off such
a collection every few requests: before this, 18–20 % of uWSGI's and daphne's CPU per batch
(gc.callbacks; docs/benchmarks.md). Start-up objects live as long as the process, so nothing is lost
by never looking at them again; whatever is created later is collected as usual.
"""

import gc


def freeze_startup_heap() -> int:
    """Collect once (garbage from the imports is freed, not kept), then freeze what is left.

    Call it once the application is loaded and before the first request or socket. Returns how many
    objects the collector will skip from now on.
    """
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
