#!/bin/sh
# /root/hello.txt holds exactly the line "hello".
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
[ "$(cat /root/hello.txt 2>/dev/null)" = hello ]
