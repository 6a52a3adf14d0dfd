"""The Celery application.

With REDIS_URL set, Redis is broker and result backend and a worker runs the tasks.
Without it (the embedded default), tasks run in-process at .delay() time.
"""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "clinic.settings")

app = Celery("clinic")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
