#!/bin/sh
# The data the tasks work on, under /root/data.
set -e
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
mkdir -p /root/data
cat > /root/data/servers.json <<'JSON'
[
  {"name": "web-3", "region": "eu-west-1", "cpu": 4},
  {"name": "db-1", "region": "us-east-1", "cpu": 8},
  {"name": "web-1", "region": "eu-west-1", "cpu": 2},
  {"name": "cache-1", "region": "eu-central-1", "cpu": 2},
  {"name": "batch-7", "region": "eu-west-1", "cpu": 16},
  {"name": "web-2", "region": "us-east-1", "cpu": 2}
]
JSON
cat > /root/data/app.json <<'JSON'
{
  "name": "web",
  "image": "nginx:1.24",
  "replicas": 1,
  "ports": [80, 443],
  "labels": {"tier": "frontend", "team": "blue"}
}
JSON
cat > /root/data/sales.csv <<'CSV'
date,item,amount
2024-01-03,apples,120
2024-01-04,pears,75
2024-01-04,"plums, red",310
2024-01-05,apples,42
2024-01-09,cherries,1003
CSV
