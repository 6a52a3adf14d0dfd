# The production image: gunicorn for web, the same image for the Celery worker and beat.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml requirements.lock README.md ./
RUN pip install --no-cache-dir -c requirements.lock .

COPY . .
# collectstatic only reads settings; the key here is a build-time placeholder, never used to serve.
RUN DJANGO_ENV=production SECRET_KEY=build-only-placeholder-key-not-used-at-runtime-0123456789 \
    ALLOWED_HOSTS=localhost python manage.py collectstatic --noinput

RUN mkdir -p /app/exports && useradd --create-home --uid 10001 clinic && chown -R clinic /app
USER clinic
EXPOSE 8000
CMD ["gunicorn", "clinic.wsgi:application", "--bind", "0.0.0.0:8000", "--workers", "3", "--access-logfile", "-"]
