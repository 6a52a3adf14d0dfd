"""gunicorn reads this file from the working directory: its access log hides feed tokens too.

gunicorn merges this dictionary into its own logging defaults (whose root logger uses "console")."""

logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"redact_feed_tokens": {"()": "clinic.log_filters.RedactFeedTokens"}},
    "formatters": {"access": {"format": "%(message)s"}, "plain": {"format": "%(asctime)s %(levelname)s %(message)s"}},
    "handlers": {
        "access": {"class": "logging.StreamHandler", "formatter": "access", "filters": ["redact_feed_tokens"]},
        "error": {"class": "logging.StreamHandler", "formatter": "plain"},
        "console": {"class": "logging.StreamHandler", "formatter": "plain"},  # gunicorn's root logger
    },
    "loggers": {
        "gunicorn.access": {"handlers": ["access"], "level": "INFO", "propagate": False},
        "gunicorn.error": {"handlers": ["error"], "level": "INFO", "propagate": False},
    },
}
