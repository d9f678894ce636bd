#!/bin/sh
psql -h db -U postgres -v ON_ERROR_STOP=1 -c "INSERT INTO inventory VALUES ('widget', 42)" shop
