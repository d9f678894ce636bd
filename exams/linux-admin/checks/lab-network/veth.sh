#!/bin/sh
# `ip -d link` names the kind, and `lab0@lab1` the peer.
ip -o -d link show dev lab0 2>/dev/null | grep -q ' veth ' || exit 1
ip -o link show dev lab0 | grep -q '^[0-9]*: lab0@lab1:' || exit 1
ip -o link show dev lab1 | grep -q '^[0-9]*: lab1@lab0:'
