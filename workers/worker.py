"""``notify worker``: a Celery worker (prefork) consuming delivery batches."""

from __future__ import annotations

import argparse
import os

from notify.mail import prepare_templates
from notify.settings import Settings, load
from notify.smtpurl import parse_sender
from workers.celery_app import QUEUE, create_app
from workers.tasks import register


def run(settings: Settings, concurrency: int) -> None:
    """Run a Celery worker in this process until SIGTERM (warm shutdown) or SIGINT."""
    # a template that cannot render stops the worker now, with the setting named
    prepare_templates(settings.email_templates, parse_sender(settings.email_from))
    app = create_app(settings)
    register(app, settings)
    app.worker_main(
        [
            "worker",
            f"--concurrency={concurrency}",
            "--pool=prefork",
            f"--queues={QUEUE}",
            "--loglevel=INFO",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            f"--hostname=notify-{os.getpid()}@%h",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m workers.worker")
    parser.add_argument("--concurrency", type=int, default=2)
    args = parser.parse_args()
    run(load(), args.concurrency)


if __name__ == "__main__":
    main()
