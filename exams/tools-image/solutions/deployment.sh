#!/bin/sh
set -e
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
kubectl create deployment web --image=nginx:1.25 --replicas=2 --dry-run=client -o yaml > /root/deploy.yaml
