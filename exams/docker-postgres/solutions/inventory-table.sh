#!/bin/sh
psql -h db -U postgres -v ON_ERROR_STOP=1 -c 'CREATE TABLE inventory (item text PRIMARY KEY, qty integer)' shop
