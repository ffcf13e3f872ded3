"""Frames framed once and written to many sockets: the ASGI extension herald.wsserver offers.

A live batch goes to every socket of a deploy in the process. Through plain ASGI each socket paid
for the whole chain on its own: channels' send, daphne's handle_reply and serverSend (which encodes
the text again), autobahn's sendMessage, sendFrame (which frames it again) and sendData (which
formats a debug line's arguments with click even when debug is off), and then Twisted's buffered
write, which registers the socket with the event loop for writing, waits for the loop to call back,
sends, and unregisters it. That was most of daphne's ≈ 60 µs of CPU per delivered frame (py-spy,
docs/benchmarks.md).

With this extension a consumer frames the payload once per message (autobahn's own
PreparedMessage, as autobahn recommends for broadcast) and hands the same bytes to each socket.
`send()` writes them straight to the socket when nothing is waiting in front of them — one send()
call, in the caller's task — and otherwise appends them behind what is waiting, so the order on the
wire is always the order of the calls. A socket that is closing or closed gets nothing.

The extension exists only under daphne as Herald runs it (`python -m herald.wsserver`); consumers
fall back to plain ASGI sends without it (channels' test communicator, runserver).
"""

from __future__ import annotations

from autobahn.websocket.protocol import PreparedMessage
from twisted.internet.abstract import FileDescriptor

EXTENSION = "herald.prepared_frames"


def prepare(payload: bytes) -> PreparedMessage:
    """One text frame holding `payload` (UTF-8 JSON), unmasked as a server's frames are (RFC 6455 §5.1)."""
    # doNotCompress=False keeps the payload too, for a socket that negotiated compression.
    return PreparedMessage(payload, isBinary=False, applyMask=False, doNotCompress=False)


def _nothing_waiting(protocol, transport) -> bool:
    """True when no earlier byte of this socket is still waiting: in autobahn's send queue or in
    Twisted's write buffers. Only then may a frame skip ahead to the socket itself."""
    return (
        not protocol.send_queue
        and transport._tempDataLen == 0
        and len(transport.dataBuffer) == transport.offset
        and transport.connected
        and not transport.disconnecting
        and not transport._writeDisconnected
    )


def send(protocol, prepared: PreparedMessage) -> None:
    """Send a prepared frame on one daphne WebSocket connection, in order with everything else sent on it."""
    # Closing or closed: nothing more may go out (autobahn's sendMessage raises Disconnected here, and
    # daphne's "disconnected" mark is set only after autobahn's STATE_CLOSED). Dropping it loses
    # nothing: a client that reconnects resumes by seq.
    if protocol.state != protocol.STATE_OPEN:
        return
    transport = protocol.transport
    if protocol._perMessageCompress is not None or not isinstance(transport, FileDescriptor):
        protocol.sendPreparedMessage(prepared)  # compression or TLS: autobahn frames and writes it
        return
    data = prepared.payloadHybi
    if _nothing_waiting(protocol, transport):
        sent = transport.writeSomeData(data)
        if sent == len(data):
            return
        if isinstance(sent, int):
            data = data[sent:]  # the socket's buffer is full: Twisted writes the rest when it drains
        # An exception means the connection is lost: the buffered write below is dropped or fails
        # where Twisted's own write would, and Twisted closes the connection as it always does.
    transport.write(data)
