"""The one settings module. Everything that differs between machines comes from the
environment; see README.md for the list.

- Embedded default: SQLite file in the project folder (WAL, IMMEDIATE transactions),
  Celery tasks in-process, local-memory cache, DEBUG on.
- DJANGO_ENV=production: DEBUG off, a real SECRET_KEY required, HTTPS-only cookies and
  HSTS, so that `manage.py check --deploy` is clean.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import dj_database_url
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    return raw.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if not raw:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


PRODUCTION = os.environ.get("DJANGO_ENV", "development").strip().lower() == "production"

DEBUG = False if PRODUCTION else env_bool("DEBUG", True)

_DEV_SECRET_KEY = "dev-only-not-secret-3k$9vq!p2m#r7z@w4x8t^y6u1o0i5e"
SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if PRODUCTION:
        raise ImproperlyConfigured("SECRET_KEY must be set when DJANGO_ENV=production.")
    SECRET_KEY = _DEV_SECRET_KEY

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", [] if PRODUCTION else ["127.0.0.1", "localhost", "testserver"])
if PRODUCTION and not ALLOWED_HOSTS:
    raise ImproperlyConfigured("ALLOWED_HOSTS must be set when DJANGO_ENV=production.")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.forms",
    "django_htmx",
    "template_partials",
    "csp",
    "axes",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "django_celery_beat",
    "clinic",
    "sessions_setup",
    "patients",
    "scheduling",
    "calendar_sync",
    "notifications",
    "online",
    "oauth2_provider",
    "fhir_api",
    "privacy",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Early: a NUL character in any query or form value is a 400 before anything reads it.
    "clinic.middleware.RefuseNulMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # request.user.is_verified(): whether this session passed the second step (django-otp).
    "django_otp.middleware.OTPMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "clinic.middleware.ClinicMiddleware",
    # After the clinic (it reads the user's memberships): idle sign-out and the second step owed.
    "clinic.middleware.SignInMiddleware",
    # Axes must be last: it turns a locked-out login into its lockout response.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "clinic.urls"
# Widget templates come from the apps' template folders (e.g. the colour palette picker).
FORM_RENDERER = "django.forms.renderers.TemplatesSetting"
WSGI_APPLICATION = "clinic.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "clinic.context_processors.clinic_nav",
                "online.context_processors.online_requests",
                "privacy.context_processors.break_glass_reviews",
            ],
        },
    }
]

# --- Database -------------------------------------------------------------------------
_SQLITE_DEFAULT = f"sqlite:///{BASE_DIR / 'db.sqlite3'}"
DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", "") or _SQLITE_DEFAULT,
        conn_max_age=int(os.environ.get("DB_CONN_MAX_AGE", "60")),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets readers run beside the single writer; IMMEDIATE takes the write lock at
    # BEGIN so that two writers queue instead of failing half-way with "database is locked".
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": (
            "PRAGMA journal_mode=WAL;PRAGMA synchronous=NORMAL;PRAGMA foreign_keys=ON;PRAGMA busy_timeout=20000;"
        ),
    }
    # Tests use a file too (not shared-cache memory, whose table locks fail at once instead of
    # waiting), so concurrency behaves as it does in production. One file per test process,
    # so two test runs at once never share a database; pytest-django deletes it afterwards.
    DATABASES["default"]["TEST"] = {"NAME": os.path.join(tempfile.gettempdir(), f"clinic-test-{os.getpid()}.sqlite3")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Read replica (optional; clinic/replica.py) -----------------------------------------
# DATABASE_REPLICA_URL names a streaming replica of DATABASE_URL. Only the calendar grid, the appointments report
# and the ICS feed's stored bytes read it; everything that decides a write or grants access reads the primary. A
# browser that wrote is pinned to the primary for REPLICA_PIN_SECONDS (a signed cookie), so it reads its own writes.
# Unset: one database, no router, nothing changes. In test runs the replica mirrors default (no test database of
# its own on a read-only server).
DATABASE_REPLICA_URL = os.environ.get("DATABASE_REPLICA_URL", "")
REPLICA_PIN_SECONDS = float(os.environ.get("REPLICA_PIN_SECONDS", "10"))
# A replica that cannot be reached: its reads go to the primary for this long before the replica is tried again; a
# connection attempt gives up after REPLICA_CONNECT_TIMEOUT seconds (a host that drops packets must not hang pages).
REPLICA_RETRY_SECONDS = float(os.environ.get("REPLICA_RETRY_SECONDS", "30"))
if DATABASE_REPLICA_URL:
    DATABASES["replica"] = dj_database_url.parse(
        DATABASE_REPLICA_URL,
        conn_max_age=int(os.environ.get("DB_CONN_MAX_AGE", "60")),
        conn_health_checks=True,
    )
    if DATABASES["replica"]["ENGINE"] == "django.db.backends.postgresql":
        DATABASES["replica"]["OPTIONS"] = {
            **DATABASES["replica"].get("OPTIONS", {}),
            "connect_timeout": int(os.environ.get("REPLICA_CONNECT_TIMEOUT", "2")),
        }
    DATABASES["replica"]["TEST"] = {"MIRROR": "default"}
    DATABASE_ROUTERS = ["clinic.replica.ReplicaRouter"]
    MIDDLEWARE.insert(
        MIDDLEWARE.index("django.contrib.auth.middleware.AuthenticationMiddleware") + 1,
        "clinic.replica.ReplicaPinMiddleware",
    )

# --- Behind PgBouncer in transaction pooling ------------------------------------------
# DATABASE_POOLER=pgbouncer: DATABASE_URL points at PgBouncer with pool_mode = transaction (docker-compose.yml), so
# each transaction may run on a different server connection and nothing may outlive one
# (https://www.pgbouncer.org/features.html). Django's server-side cursors (.iterator() outside a transaction
# declares a WITH HOLD cursor) are switched off, and so are psycopg's prepared statements (prepared on one server
# connection, executed on another: "prepared statement does not exist"; Django 5.2 already defaults to None, this
# keeps it so whatever OPTIONS say). The time zone Django sets on connect is a parameter PgBouncer tracks per
# client, so it is safe. Persistent connections (DB_CONN_MAX_AGE) are kept: they are connections to PgBouncer.
# Every PostgreSQL alias defined above goes through the same pooler. Migrations run against the database itself.
DATABASE_POOLER = os.environ.get("DATABASE_POOLER", "").strip().lower()
if DATABASE_POOLER not in ("", "pgbouncer"):
    raise ImproperlyConfigured("DATABASE_POOLER is 'pgbouncer' (PgBouncer in transaction pooling) or empty.")
if DATABASE_POOLER:
    for _alias in DATABASES.values():
        if _alias["ENGINE"] != "django.db.backends.postgresql":
            raise ImproperlyConfigured("DATABASE_POOLER=pgbouncer needs a PostgreSQL DATABASE_URL (PgBouncer's).")
        _alias["DISABLE_SERVER_SIDE_CURSORS"] = True
        _alias["OPTIONS"] = {**_alias.get("OPTIONS", {}), "prepare_threshold": None}

# --- Cache and Celery -----------------------------------------------------------------
# Two-way Google Calendar sync: offered only when the OAuth client is configured. The endpoints can be
# pointed elsewhere (the tests' fake Google). OAuth tokens are encrypted at rest with SYNC_TOKEN_KEYS
# (comma-separated Fernet keys, newest first, so keys can be rotated); without it, a key derived from
# SECRET_KEY (development only).
GOOGLE_CLIENT_ID = os.environ.get("GOOGLE_CLIENT_ID", "")
GOOGLE_CLIENT_SECRET = os.environ.get("GOOGLE_CLIENT_SECRET", "")
GOOGLE_AUTH_URI = os.environ.get("GOOGLE_AUTH_URI", "https://accounts.google.com/o/oauth2/auth")
GOOGLE_TOKEN_URI = os.environ.get("GOOGLE_TOKEN_URI", "https://oauth2.googleapis.com/token")
GOOGLE_API_ROOT = os.environ.get("GOOGLE_API_ROOT", "https://www.googleapis.com/")
GOOGLE_REVOKE_URI = os.environ.get("GOOGLE_REVOKE_URI", "https://oauth2.googleapis.com/revoke")
# Where Google sends push notifications (events.watch): this site's public https origin. Unset: no
# channels, and Google changes arrive with the periodic pull (every GOOGLE_PULL_MINUTES) alone.
GOOGLE_WEBHOOK_ORIGIN = os.environ.get("GOOGLE_WEBHOOK_ORIGIN", "")
GOOGLE_PULL_MINUTES = int(os.environ.get("GOOGLE_PULL_MINUTES", "15"))
# Google's token response may name more scopes than were asked for (the scopes granted before come with the new
# grant: include_granted_scopes). oauthlib raises on that unless told to relax; we check the scopes we need ourselves
# (calendar_sync.views.google.google_callback).
os.environ.setdefault("OAUTHLIB_RELAX_TOKEN_SCOPE", "1")
# Google's per-minute quotas of the Calendar API (https://developers.google.com/workspace/calendar/api/guides/quota):
# calls per user (a batch of 50 counts as 50) and per project (the OAuth client, across all connections), over a
# sliding window. The pacer (calendar_sync/google/pacing.py) keeps every worker under them; the tests' fake Google
# enforces the same values, and tests and the benchmark scale the window down.
GOOGLE_RATE_LIMIT_USER = int(os.environ.get("GOOGLE_RATE_LIMIT_USER", "600"))
GOOGLE_RATE_LIMIT_PROJECT = int(os.environ.get("GOOGLE_RATE_LIMIT_PROJECT", "10000"))
GOOGLE_RATE_WINDOW_SECONDS = float(os.environ.get("GOOGLE_RATE_WINDOW_SECONDS", "60"))
# Calls per user and window a push leaves to pulls (per project: the same share of its limit), so a pull waits
# at most briefly while a large push runs.
GOOGLE_PULL_HEADROOM = int(os.environ.get("GOOGLE_PULL_HEADROOM", "50"))
# The longest a worker sleeps for quota before it stops and re-queues the rest with that countdown; in-process
# (eager) tasks sleep at most GOOGLE_PACE_EAGER_WAIT_SECONDS (a request never waits long). A push stops after
# GOOGLE_PUSH_SLICE_SECONDS (well inside the connection's lock) and continues in a new task.
GOOGLE_PACE_WAIT_SECONDS = float(os.environ.get("GOOGLE_PACE_WAIT_SECONDS", "20"))
GOOGLE_PACE_EAGER_WAIT_SECONDS = float(os.environ.get("GOOGLE_PACE_EAGER_WAIT_SECONDS", "1"))
GOOGLE_PUSH_SLICE_SECONDS = float(os.environ.get("GOOGLE_PUSH_SLICE_SECONDS", "240"))
SYNC_TOKEN_KEYS = env_list("SYNC_TOKEN_KEYS", [])
if PRODUCTION and GOOGLE_CLIENT_ID and not SYNC_TOKEN_KEYS:
    raise ImproperlyConfigured("SYNC_TOKEN_KEYS must be set when Google sync is configured in production.")

REDIS_URL = os.environ.get("REDIS_URL", "")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": os.environ.get("CACHE_KEY_PREFIX", "clinic"),
            # A cache that stops answering fails fast instead of holding a request (nudges use it too).
            "OPTIONS": {"socket_timeout": 1.0, "socket_connect_timeout": 1.0},
        }
    }
    CELERY_BROKER_URL = REDIS_URL
    CELERY_RESULT_BACKEND = REDIS_URL
    CELERY_TASK_ALWAYS_EAGER = False
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    CELERY_BROKER_URL = "memory://"
    CELERY_RESULT_BACKEND = "cache+memory://"
    # No broker: run tasks in the calling process, and let their errors surface.
    CELERY_TASK_ALWAYS_EAGER = True
    CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
# Nudges (clinic/nudges.py): a write's follow-up work is rows in its transaction; the nudge that tells a
# worker is fire-and-forget after commit, and gives up on a broker that does not answer within this many
# seconds. After a refusal, nudges pause this long (the per-minute sweep delivers what they would have).
NUDGE_PUBLISH_TIMEOUT = float(os.environ.get("NUDGE_PUBLISH_TIMEOUT", "0.5"))
NUDGE_PAUSE_SECONDS = float(os.environ.get("NUDGE_PAUSE_SECONDS", "2"))
SWEEP_SECONDS = float(os.environ.get("SWEEP_SECONDS", "60"))  # how often beat delivers rows whose nudge was lost
CELERY_BEAT_SCHEDULE = {
    "deliver-waiting": {"task": "calendar_sync.tasks.deliver_waiting", "schedule": SWEEP_SECONDS},
    "google-pull": {"task": "calendar_sync.tasks.google_pull_all", "schedule": GOOGLE_PULL_MINUTES * 60.0},
    "google-channels": {"task": "calendar_sync.tasks.google_renew_channels", "schedule": 3600.0},
    "notifications-tick": {"task": "notifications.tasks.tick", "schedule": SWEEP_SECONDS},
    "holds-expire": {"task": "scheduling.tasks.holds_expire", "schedule": SWEEP_SECONDS},
    "waitlist-sweep": {"task": "scheduling.tasks.waitlist_sweep", "schedule": SWEEP_SECONDS},
    "news-sweep": {"task": "scheduling.tasks.news_sweep", "schedule": SWEEP_SECONDS},
    "online-checks-purge": {"task": "online.tasks.checks_purge", "schedule": 3600.0},
    "break-glass-alerts": {"task": "privacy.tasks.break_glass_alerts_sweep", "schedule": SWEEP_SECONDS},
    "clinic-export-sweep": {"task": "privacy.tasks.clinic_export_sweep", "schedule": SWEEP_SECONDS},
}

# --- Authentication -------------------------------------------------------------------
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

AXES_FAILURE_LIMIT = int(os.environ.get("AXES_FAILURE_LIMIT", "5"))
AXES_COOLOFF_TIME = float(os.environ.get("AXES_COOLOFF_HOURS", "0.25"))  # hours
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_VERBOSE = False
# Failures are counted per login and client address. Behind proxies (docker-compose expects one, terminating
# TLS) the address is the one the outermost trusted proxy put in X-Forwarded-For: TRUSTED_PROXY_COUNT says
# how many proxies append to it; 0 (the default) believes no X-Forwarded-For at all (see clinic/proxy.py).
TRUSTED_PROXY_COUNT = int(os.environ.get("TRUSTED_PROXY_COUNT", "0"))
if TRUSTED_PROXY_COUNT < 0:
    raise ImproperlyConfigured("TRUSTED_PROXY_COUNT is the number of proxies in front of the app: 0 or more.")
AXES_CLIENT_IP_CALLABLE = "clinic.proxy.client_ip"

# Two-factor sign-in (clinic/signin.py): authenticator apps (TOTP) and recovery codes, through django-otp.
OTP_TOTP_ISSUER = os.environ.get("OTP_TOTP_ISSUER", "Clinic Scheduler")
# A typed code never reaches axes' failure log.
AXES_SENSITIVE_PARAMETERS = ["username", "ip_address", "code", "password"]

# Sessions in the database under the SHA-256 of their key, with who, when and which browser in columns: the
# "Your active sessions" list, "sign out everywhere" (clinic/user_sessions.py).
SESSION_ENGINE = "clinic.user_sessions"
SESSION_COOKIE_AGE = 60 * 60 * 12
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"

# --- Email ----------------------------------------------------------------------------
EMAIL_BACKEND = os.environ.get(
    "EMAIL_BACKEND",
    "django.core.mail.backends.smtp.EmailBackend" if PRODUCTION else "django.core.mail.backends.console.EmailBackend",
)
EMAIL_HOST = os.environ.get("EMAIL_HOST", "localhost")
EMAIL_PORT = int(os.environ.get("EMAIL_PORT", "25"))
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "Clinic Scheduler <no-reply@localhost>")

# --- Messages to patients (notifications/) -------------------------------------------------
# Links in messages (unsubscribe, Twilio's status callbacks) are absolute: this is the site's public address.
SITE_URL = os.environ.get("SITE_URL", "http://127.0.0.1:8000")
# "console" prints texts (make run); "twilio" sends them through Twilio's REST API.
SMS_BACKEND = os.environ.get("SMS_BACKEND", "console")
TWILIO_ACCOUNT_SID = os.environ.get("TWILIO_ACCOUNT_SID", "")
TWILIO_AUTH_TOKEN = os.environ.get("TWILIO_AUTH_TOKEN", "")
TWILIO_FROM_NUMBER = os.environ.get("TWILIO_FROM_NUMBER", "")
TWILIO_MESSAGING_SERVICE_SID = os.environ.get("TWILIO_MESSAGING_SERVICE_SID", "")
TWILIO_API_BASE = os.environ.get("TWILIO_API_BASE", "")  # another host for https://api.twilio.com (tests)
SMS_DEFAULT_COUNTRY_CODE = os.environ.get("SMS_DEFAULT_COUNTRY_CODE", "44")  # for numbers written without one
SMS_TIMEOUT_SECONDS = float(os.environ.get("SMS_TIMEOUT_SECONDS", "10"))
EMAIL_TIMEOUT = int(os.environ.get("EMAIL_TIMEOUT", "10"))
MESSAGE_MAX_ATTEMPTS = int(os.environ.get("MESSAGE_MAX_ATTEMPTS", "8"))
MESSAGE_RETRY_SECONDS = float(os.environ.get("MESSAGE_RETRY_SECONDS", "60"))  # doubled after each try, to 1 hour
SENDING_STALE_SECONDS = float(os.environ.get("SENDING_STALE_SECONDS", "300"))  # then "delivery unknown"
REMINDER_LOOKBACK_HOURS = int(os.environ.get("REMINDER_LOOKBACK_HOURS", "6"))
MESSAGES_PER_TICK = int(os.environ.get("MESSAGES_PER_TICK", "50000"))
MESSAGE_BATCH = int(os.environ.get("MESSAGE_BATCH", "100"))

# --- Online booking (online/) ---------------------------------------------------------------
# Rate limits of the public site, counted in the cache (Redis in production): per client address and per email
# or phone. Page views per address per minute; codes asked for per hour; codes typed per address per hour.
ONLINE_PAGE_LIMIT = int(os.environ.get("ONLINE_PAGE_LIMIT", "120"))
ONLINE_CODE_LIMIT_IP = int(os.environ.get("ONLINE_CODE_LIMIT_IP", "20"))
ONLINE_CODE_LIMIT_EACH = int(os.environ.get("ONLINE_CODE_LIMIT_EACH", "5"))
ONLINE_VERIFY_LIMIT_IP = int(os.environ.get("ONLINE_VERIFY_LIMIT_IP", "40"))
ONLINE_LINK_DAYS = int(os.environ.get("ONLINE_LINK_DAYS", "180"))  # how long an email's manage link works

# --- The FHIR API (fhir_api/) ------------------------------------------------------------
# Consumers are OAuth2 clients (django-oauth-toolkit, client credentials only): each is bound to one clinic and to
# the scopes its admin chose (fhir_api/oauth.py checks both). Client secrets are hashed; access tokens are never
# stored, only their SHA-256 (RFC 9700's token storage).
OAUTH2_PROVIDER = {
    "OAUTH2_VALIDATOR_CLASS": "fhir_api.oauth.ConsumerValidator",
    "SCOPES": {
        "slot.read": "Search free slots",
        "appointment.read": "Read appointments and find patients",
        "appointment.write": "Book, amend and cancel appointments",
    },
    "DEFAULT_SCOPES": ["slot.read"],
    "ACCESS_TOKEN_EXPIRE_SECONDS": int(os.environ.get("FHIR_TOKEN_SECONDS", "3600")),
    "COMPLIANT_BCP_RFC9700_TOKEN_STORAGE": True,
    # Only client credentials are used; the rest of RFC 9700's recommendations hold too (no implicit or password
    # grant, no tokens in URLs, https redirects only), so nothing unused is left open.
    "COMPLIANT_BCP_RFC9700_IMPLICIT_GRANT": True,
    "COMPLIANT_BCP_RFC9700_PASSWORD_GRANT": True,
    "COMPLIANT_BCP_RFC9700_PKCE_METHOD": True,
    "COMPLIANT_BCP_RFC9700_ACCESS_TOKEN_TRANSPORT": True,
    "COMPLIANT_BCP_RFC9700_AUTHZ_RESPONSE_ISS": True,
    "REFRESH_TOKEN_REUSE_PROTECTION": True,
    "ALLOWED_REDIRECT_URI_SCHEMES": ["https"],
}
OAUTH2_PROVIDER_APPLICATION_MODEL = "oauth2_provider.Application"
# Free slots a search may span (GP Connect: at most 14 days; more is a 422).
FHIR_SEARCH_DAYS = 14

# --- Data rights (privacy/) ------------------------------------------------------------
# A clinic's export (a zip of its data) is written here by the worker and streamed from here once: a folder that the
# web and worker processes share (docker-compose mounts the "exports" volume), never under static files.
PRIVACY_EXPORT_DIR = Path(os.environ.get("PRIVACY_EXPORT_DIR") or (BASE_DIR / "exports"))
# How long an export's download link works (then beat deletes the file); rows are written in chunks of this many.
PRIVACY_EXPORT_LINK_HOURS = float(os.environ.get("PRIVACY_EXPORT_LINK_HOURS", "24"))
PRIVACY_EXPORT_CHUNK = int(os.environ.get("PRIVACY_EXPORT_CHUNK", "2000"))
# A running export whose progress has not moved for this long is taken as lost (its worker died) and failed.
PRIVACY_EXPORT_STALE_MINUTES = float(os.environ.get("PRIVACY_EXPORT_STALE_MINUTES", "30"))

# --- Internationalisation and time ----------------------------------------------------
LANGUAGE_CODE = "en-gb"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Static files ---------------------------------------------------------------------
STATIC_URL = "/static/"
# collectstatic's target, for production; elsewhere whitenoise serves from the finders.
STATIC_ROOT = os.environ.get("STATIC_ROOT") or (BASE_DIR / "staticfiles" if PRODUCTION else None)
WHITENOISE_USE_FINDERS = not PRODUCTION
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "whitenoise.storage.CompressedManifestStaticFilesStorage"
            if PRODUCTION
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}

# --- Content Security Policy ----------------------------------------------------------
# Only our own scripts and styles; no inline code. htmx's inline indicator styles are
# switched off (htmx-config meta tag) and shipped in static/css/app.css instead.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "connect-src": [SELF],
        "font-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    }
}

# --- Security -------------------------------------------------------------------------
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
if PRODUCTION:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SECURE_HSTS_SECONDS = int(os.environ.get("SECURE_HSTS_SECONDS", str(60 * 60 * 24 * 365)))
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_REDIRECT_EXEMPT = [r"^healthz$"]

# --- Logging --------------------------------------------------------------------------
# Patient data never goes to logs: we log ids and actions, never names or identifiers.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "filters": {"redact_feed_tokens": {"()": "clinic.log_filters.RedactFeedTokens"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["redact_feed_tokens"]}
    },
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {
        "axes": {"level": "WARNING"},
        # Twilio's client logs each request's form (the number and the text) at INFO: never into our logs.
        "twilio": {"level": "WARNING"},
        # The development server logs each request line itself; its handler gets the same filter.
        "django.server": {"handlers": ["console"], "level": "INFO", "propagate": False},
    },
}
