#!/bin/sh
set -e
mkdir -p /root/bin
cat > /root/bin/lower-ext <<'SCRIPT'
#!/bin/sh
dir=${1:?usage: lower-ext DIR}
for f in "$dir"/*.*; do
    [ -f "$f" ] && [ ! -L "$f" ] || continue
    name=${f##*/}
    stem=${name%.*}
    ext=${name##*.}
    lower=$(printf '%s' "$ext" | tr '[:upper:]' '[:lower:]')
    [ "$ext" = "$lower" ] || mv -- "$f" "$dir/$stem.$lower"
done
SCRIPT
chmod 755 /root/bin/lower-ext
