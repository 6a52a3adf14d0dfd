"""Beat for the embedded default (`make run`: no Redis, no worker, no beat process).

The development server's serving process runs beat's schedule in a thread of its own: every entry of
CELERY_BEAT_SCHEDULE, at its interval, in process (tasks are eager there). So the demo sends reminders when they
are due and sweeps up what it should, as a deployment's beat would. Only there: never in tests, never with a
broker (a real beat runs then), and EMBEDDED_BEAT=0 turns it off.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time

from django.conf import settings

log = logging.getLogger(__name__)
_started = False


def wanted() -> bool:
    return (
        settings.CELERY_TASK_ALWAYS_EAGER
        and os.environ.get("EMBEDDED_BEAT", "1") != "0"
        and "runserver" in sys.argv
        # runserver's serving process: the autoreloader's child (its parent only watches files), or the one
        # process of --noreload.
        and (os.environ.get("RUN_MAIN") == "true" or "--noreload" in sys.argv)
    )


def start() -> None:
    global _started
    if _started:
        return
    _started = True
    threading.Thread(target=_run, name="embedded-beat", daemon=True).start()


def _run() -> None:
    from clinic.celery import app

    app.loader.import_default_modules()
    schedule = [(str(entry["task"]), float(str(entry["schedule"]))) for entry in settings.CELERY_BEAT_SCHEDULE.values()]
    last: dict[str, float] = {}
    while True:
        now = time.monotonic()
        for task, every in schedule:
            if now - last.get(task, now - every) >= every:
                last[task] = now
                try:
                    app.tasks[task].apply()
                except Exception:  # noqa: BLE001 - one entry's failure must not stop the others
                    log.exception("embedded beat: %s failed", task)
        time.sleep(min(5.0, *(every for _, every in schedule)))
