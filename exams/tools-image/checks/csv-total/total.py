#!/usr/bin/python3
# /root/total.txt holds 1550, the sum of the amount column.
import sys

try:
    with open("/root/total.txt") as f:
        text = f.read().strip()
except OSError:
    sys.exit(1)
sys.exit(0 if text == "1550" else 1)
