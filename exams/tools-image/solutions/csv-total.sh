#!/bin/sh
set -e
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
python3 -c 'import csv; print(sum(int(r["amount"]) for r in csv.DictReader(open("/root/data/sales.csv"))))' \
  > /root/total.txt
