#!/bin/sh
# /root/hello.txt holds exactly the line "hello".
[ "$(cat /root/hello.txt 2>/dev/null)" = hello ]
