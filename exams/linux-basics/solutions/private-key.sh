#!/bin/sh
set -e
chmod 600 /root/keys/api.key
chmod 700 /root/keys
