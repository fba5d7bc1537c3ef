#!/usr/bin/env bash
# Copy the project's sources (not its build products) from REPO to DEST, so a
# build there cannot pick up a stale .so or generated _core.c.  In a git
# checkout: the tracked files and the untracked ones git does not ignore, as
# they are in the working tree (uncommitted edits included); elsewhere, the
# whole folder minus the build products.
# Used by tools/build_wheels.sh and tools/sanitize.sh.
set -euo pipefail
if [ $# -ne 2 ]; then
    echo "usage: bash tools/copy_sources.sh REPO DEST" >&2
    exit 2
fi
repo=$1
dest=$2
mkdir -p "$dest"
if git -C "$repo" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    (cd "$repo" && git ls-files -z --cached --others --exclude-standard \
        | while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done \
        | tar --null -T - -cf -) | tar -xf - -C "$dest"
else
    tar -C "$repo" --exclude=build --exclude=dist --exclude='*.so' --exclude='*.o' \
        --exclude=fastsoftmax/_core.c --exclude=.git -cf - . | tar -xf - -C "$dest"
fi
