#!/bin/sh
# The one login PgBouncer accepts and uses for PostgreSQL (SCRAM both ways), written from the environment at
# start so the password lives in one place (POSTGRES_PASSWORD in docker-compose.yml), never in the image.
set -eu
: "${DB_USER:?set DB_USER}" "${DB_PASSWORD:?set DB_PASSWORD}"
umask 077
printf '"%s" "%s"\n' "$DB_USER" "$DB_PASSWORD" > /run/pgbouncer/userlist.txt
exec pgbouncer /etc/pgbouncer/pgbouncer.ini
