#!/bin/sh
# What the candidate types in the desktop's terminal.
echo "written on the desktop" > /root/Desktop/note.txt
