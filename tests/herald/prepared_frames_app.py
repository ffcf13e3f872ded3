"""A bare ASGI app for tests/herald/test_prepared_frames.py: it sends numbered frames through the
herald.prepared_frames extension and through plain ASGI sends, interleaved, when a client asks."""

import json
import logging

from herald.prepared_frames import EXTENSION

log = logging.getLogger("prepared_frames_app")


def _payload(i: int, size: int) -> str:
    return json.dumps({"i": i, "pad": "x" * size})


async def application(scope, receive, send):
    frames = scope.get("extensions", {}).get(EXTENSION)
    assert (await receive())["type"] == "websocket.connect"
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        ask = json.loads(message["text"])
        if ask["action"] == "hello":
            await send({"type": "websocket.send", "text": json.dumps({"extension": frames is not None})})
        elif ask["action"] == "burst":  # every third frame through ASGI, the rest prepared
            for i in range(ask["count"]):
                if i % 3 == 2:
                    await send({"type": "websocket.send", "text": _payload(i, ask["size"])})
                else:
                    frames["send"](frames["prepare"](_payload(i, ask["size"]).encode()))
        elif ask["action"] == "close-then-send":
            await send({"type": "websocket.close", "code": 4000})
            frames["send"](frames["prepare"](b'{"after": "close"}'))
            log.warning("a prepared frame sent after the close returned quietly")
