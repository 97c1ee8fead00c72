"""Fixtures for delivery tests: a webhook receiver and whole delivery stacks."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Callable, Iterator

import pytest

from tests.integration.delivery_stack import Stack, make_stack
from tests.integration.mail_stack import (  # noqa: F401 (fixtures for the email and monitoring sinks)
    alertmanager,
    mail_stack,
    mail_stack_factory,
    smtp,
)
from tests.support.factories import GatewayFactory, TokenMaker
from tests.support.redis import RedisServer
from tests.support.webhook_receiver import Receiver

StackFactory = Callable[..., Stack]


def _rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=120)


@pytest.fixture
def broker_url() -> Iterator[str]:
    """A RabbitMQ vhost of the machine's RabbitMQ (127.0.0.1:5672, guest) for this test
    alone, removed after it: ``amqp://guest:guest@127.0.0.1:5672/<vhost>``."""
    vhost = f"notify-test-{uuid.uuid4().hex[:12]}"
    _rabbitmqctl("add_vhost", vhost)
    try:
        _rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        yield f"amqp://guest:guest@127.0.0.1:5672/{vhost}"
    finally:
        _rabbitmqctl("delete_vhost", vhost)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def stack_factory(
    redis_server: RedisServer,
    gateway_factory: GatewayFactory,
    make_token: TokenMaker,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[StackFactory]:
    """``stack_factory(workers=1, **env)``: gateway, dispatcher and Celery workers
    (concurrency 2 each) on ``redis_server`` with a fast retry schedule; ``env`` adds
    or overrides ``NOTIFY_*`` settings. Logs are printed for a failing test."""
    stacks: list[Stack] = []

    def make(workers: int = 1, **env: object) -> Stack:
        built = make_stack(
            gateway_factory,
            make_token,
            tmp_path_factory.mktemp("stack"),
            redis_server.url,
            workers=workers,
            **env,
        )
        stacks.append(built)
        return built

    try:
        yield make
    finally:
        for built in stacks:
            built.close()
            print(built.logs())  # pytest shows captured output only for failures


@pytest.fixture
def stack(stack_factory: StackFactory) -> Stack:
    return stack_factory()
