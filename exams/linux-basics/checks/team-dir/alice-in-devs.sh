#!/bin/sh
# The user alice exists and is a member of the group devs.
id alice >/dev/null 2>&1 || exit 1
id -nG alice | tr ' ' '\n' | grep -qx devs
