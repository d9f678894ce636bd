#!/bin/sh
# inventory holds ('widget', 42).
qty=$(psql -h db -U postgres -d shop -tAc "SELECT qty FROM inventory WHERE item = 'widget'") || exit 1
[ "$qty" = 42 ] || { echo "qty of widget: $qty"; exit 1; }
