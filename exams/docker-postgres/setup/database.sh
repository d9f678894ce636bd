#!/bin/sh
# The database the tasks work in (the `db` service is ready before any setup runs).
set -e
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
psql -h db -U postgres -v ON_ERROR_STOP=1 -qc 'CREATE DATABASE shop' postgres
