"""herald.heap: garbage from the start-up is freed, what is left is frozen, and later garbage is still collected."""

from __future__ import annotations

from .conftest import python_in_app

CHECK = """
import gc, weakref
from herald.heap import freeze_startup_heap

class Node:
    pass

gc.disable()  # no automatic collection may free the cycle: only freeze_startup_heap() can
start_up_garbage = Node()
start_up_garbage.me = start_up_garbage
start_up_garbage_ref = weakref.ref(start_up_garbage)
del start_up_garbage
frozen = freeze_startup_heap()
gc.enable()
later_garbage = Node()
later_garbage.me = later_garbage
later_garbage_ref = weakref.ref(later_garbage)
del later_garbage
gc.collect()
print(frozen == gc.get_freeze_count(), frozen, start_up_garbage_ref() is None, later_garbage_ref() is None)
"""


def test_start_up_garbage_is_freed_the_rest_frozen_and_later_garbage_still_collected():
    counts_agree, frozen, start_up_freed, later_freed = python_in_app(CHECK)
    assert counts_agree == "True"
    assert int(frozen) > 1_000  # the interpreter's own modules at least
    assert start_up_freed == "True"  # collected before the freeze, not kept forever
    assert later_freed == "True"  # the collector still runs for everything created afterwards
