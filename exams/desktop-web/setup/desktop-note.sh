#!/bin/sh
# The desktop's folder, where the candidate saves their work.
mkdir -p /root/Desktop
