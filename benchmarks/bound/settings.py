"""The product's settings, with the URLs of the bound bookings in front of the product's own."""

from clinic.settings import *  # noqa: F403

ROOT_URLCONF = "benchmarks.bound.urls"
