#!/bin/sh
# The heading, in any case and spacing inside the tag.
grep -Eqi '<h1>[[:space:]]*examroom[[:space:]]*</h1>' /srv/www/index.html 2>/dev/null
