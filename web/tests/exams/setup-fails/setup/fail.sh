#!/bin/sh
echo "the test fixture fails on purpose" >&2
exit 3
