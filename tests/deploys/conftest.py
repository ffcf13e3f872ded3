"""Fixtures for the payload tests: a real redis-server for the channel layer and the broker, users,
a logged-in WebSocket client for the real ASGI application."""

from __future__ import annotations

import json

import pytest
from asgiref.sync import sync_to_async
from channels.layers import channel_layers
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.db import connections
from django.test import Client

from deploys import redis as herald_redis
from deploys.consumers.replay import replay_cache
from deploys.management.commands.ensure_admin import ensure_release_engineers
from deploys.models import Environment, Service, ServiceStep
from herald import prepared_frames
from tests.support.servers import RedisServer


@pytest.fixture(scope="session")
def redis_server():
    with RedisServer() as server:
        yield server


@pytest.fixture(autouse=True)
def _use_test_redis(redis_server, settings):
    """Point the channel layer, the broker and Herald's Redis client at the test server."""
    settings.REDIS_URL = redis_server.url
    settings.CHANNEL_LAYERS = {
        "default": {
            **settings.CHANNEL_LAYERS["default"],
            "CONFIG": {**settings.CHANNEL_LAYERS["default"]["CONFIG"], "hosts": [redis_server.url]},
        }
    }
    from herald.celery import app

    app.conf.broker_url = redis_server.url
    channel_layers.backends = {}
    herald_redis.reset()
    herald_redis.client().flushall()
    yield
    channel_layers.backends = {}
    herald_redis.reset()


@pytest.fixture(autouse=True)
def _fresh_replay_cache():
    """Each test's database numbers its deploys from 1 again; the process-wide replay cache must not
    answer for the last test's deploy 1."""
    replay_cache.clear()
    yield
    replay_cache.clear()


@pytest.fixture(autouse=True)
async def _close_worker_thread_connections():
    """The async tests read and write through asgiref's sync_to_async, whose worker thread keeps a
    database connection of its own. channels' websocket_disconnect used to close it on every socket
    close; HeraldConsumer's does not, so close it here, or the session cannot drop the test database."""
    yield
    await sync_to_async(connections.close_all)()


@pytest.fixture
def engineer(transactional_db):
    """A release engineer: may start and cancel deploys."""
    user = get_user_model().objects.create_user("rita", password="pw-rita")
    user.groups.add(ensure_release_engineers())
    return user


@pytest.fixture
def watcher(transactional_db):
    """A logged-in user without the deploy permission."""
    return get_user_model().objects.create_user("walt", password="pw-walt")


@pytest.fixture
def service(transactional_db):
    svc = Service.objects.create(slug="billing-api", name="Billing API")
    ServiceStep.objects.create(service=svc, position=0, name="noop", argv=["true"])
    Environment.objects.create(slug="production")
    return svc


def session_cookie(user) -> bytes:
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}".encode()


@pytest.fixture(params=["asgi", "prepared"])
def both_send_paths(request, monkeypatch):
    """Run a socket test twice: with plain ASGI sends, and with the consumers' prepared-frames path
    (herald/prepared_frames.py), which real daphne offers and the test communicator does not."""
    monkeypatch.setattr(Socket, "prepared_frames", request.param == "prepared")
    return request.param


def _prepared_frames_over(comm: WebsocketCommunicator) -> dict:
    """The herald.prepared_frames extension for a test communicator: the frame's payload goes to the
    communicator as the websocket.send message daphne would have turned it into. (Only herald.wsserver
    offers the real one; tests/herald/test_prepared_frames.py tests it on a real socket.) One prepared
    frame always turns into the same str object, so tests can still tell what was encoded once."""

    def send(prepared):
        text = prepared.__dict__.setdefault("test_text", prepared.payload.decode())
        comm.output_queue.put_nowait({"type": "websocket.send", "text": text})

    return {"prepare": prepared_frames.prepare, "send": send}


class Socket:
    """A WebsocketCommunicator that speaks JSON frames, for the real herald.asgi application."""

    prepared_frames = False  # offer the prepared-frames extension (the both_send_paths fixture)

    def __init__(self, comm: WebsocketCommunicator):
        self.comm = comm

    @classmethod
    async def open(cls, path: str, user=None, origin: bytes = b"http://localhost", expect_accept: bool = True):
        """Connect as `user` (None: anonymous); returns the Socket, or (accepted, code) if not accepted."""
        from herald.asgi import application

        headers = [(b"origin", origin), (b"host", b"localhost")]
        if user is not None:
            headers.append((b"cookie", await sync_to_async(session_cookie)(user)))
        comm = WebsocketCommunicator(application, path, headers=headers)
        if cls.prepared_frames:  # the application reads its scope (this same dict) once it runs
            comm.scope["extensions"] = {prepared_frames.EXTENSION: _prepared_frames_over(comm)}
        accepted, code = await comm.connect(timeout=5)
        if expect_accept:
            assert accepted, f"socket {path} refused with {code}"
            return cls(comm)
        return accepted, code

    async def expect_close(self, timeout: float = 5) -> int:
        """Wait for the server to close; returns the close code."""
        message = await self.comm.receive_output(timeout)
        assert message["type"] == "websocket.close", message
        return message.get("code")

    async def send(self, frame) -> None:
        await self.comm.send_to(text_data=frame if isinstance(frame, str) else json.dumps(frame))

    async def recv(self, timeout: float = 5, watchers: bool = False) -> dict:
        """The next frame; `watchers` frames (who is watching) are skipped unless asked for."""
        while True:
            frame = json.loads(await self.comm.receive_from(timeout=timeout))
            if watchers or frame["type"] != "watchers":
                return frame

    async def recv_until(self, frame_type: str, timeout: float = 5) -> dict:
        while True:
            frame = await self.recv(timeout, watchers=frame_type == "watchers")
            if frame["type"] == frame_type:
                return frame

    async def close(self):
        await self.comm.disconnect()
