#!/bin/sh
# Replaces the contents of DEST (the frontend-dist volume that the proxy serves) with the built site in SRC: what
# the frontend-build service's container does, with coreutils and findutils alone (no Node.js in that image).
#
#   sh publish-dist.sh SRC DEST
#
# The order keeps a proxy that serves DEST meanwhile answering: first the new content-hashed files under assets/
# (new names: nothing being served changes), then every other file (index.html and its .gz/.zst last), each
# written beside its target and renamed over it (a reader sees the old file or the new one, never half of one),
# then whatever the new build no longer has is deleted.
set -eu
src=${1:?usage: publish-dist.sh SRC DEST}
dest=${2:?usage: publish-dist.sh SRC DEST}
[ -d "$src" ] || { echo "publish-dist: $src is not a folder" >&2; exit 1; }
mkdir -p "$dest"
src=$(cd "$src" && pwd) dest=$(cd "$dest" && pwd)
cd "$src"

place() { # one file (a path relative to SRC), atomically
    target="$dest/$1"
    tmp="$(dirname "$target")/.publish-$$-$(basename "$target")"
    cp "$1" "$tmp"
    mv -f "$tmp" "$target"
}

find . -mindepth 1 -type d | while IFS= read -r folder; do mkdir -p "$dest/$folder"; done
find . -type f -path './assets/*' | while IFS= read -r file; do place "$file"; done
find . -type f ! -path './assets/*' ! -name 'index.html*' | while IFS= read -r file; do place "$file"; done
find . -type f -name 'index.html*' | while IFS= read -r file; do place "$file"; done

cd "$dest"
# -depth: a folder's contents before the folder itself
find . -mindepth 1 -depth | while IFS= read -r entry; do
    if [ ! -e "$src/$entry" ] && [ -e "$entry" ]; then
        rm -rf "$entry"
        echo "publish-dist: removed $entry (not in this build)"
    fi
done
echo "publish-dist: $dest holds the build from $src ($(find . -type f | wc -l) files)"
