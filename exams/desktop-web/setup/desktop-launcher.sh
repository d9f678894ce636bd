#!/bin/sh
# Nothing is there yet: the candidate writes the launcher.
mkdir -p /root/Desktop
rm -f /root/Desktop/open-site.sh
