#!/bin/sh
# The note holds exactly the line (a trailing newline or not).
[ "$(cat /root/Desktop/note.txt 2>/dev/null)" = "written on the desktop" ]
