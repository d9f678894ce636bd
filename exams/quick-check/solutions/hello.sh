#!/bin/sh
echo hello > /root/hello.txt
