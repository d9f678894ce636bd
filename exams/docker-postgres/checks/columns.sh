#!/bin/sh
# shop.inventory: item text (its primary key), qty integer.
cols=$(psql -h db -U postgres -d shop -tAc "SELECT column_name || ':' || data_type FROM information_schema.columns
  WHERE table_schema = 'public' AND table_name = 'inventory' ORDER BY ordinal_position") || exit 1
[ "$cols" = "item:text
qty:integer" ] || { echo "columns: $cols"; exit 1; }
pk=$(psql -h db -U postgres -d shop -tAc "SELECT a.attname FROM pg_index i JOIN pg_attribute a
  ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) WHERE i.indrelid = 'public.inventory'::regclass
  AND i.indisprimary") || exit 1
[ "$pk" = item ] || { echo "primary key: $pk"; exit 1; }
