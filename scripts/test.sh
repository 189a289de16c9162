#!/usr/bin/env bash
# Install, then run the whole test suite (real ONNX Runtime / OpenVINO sessions, real MiniLM, real GLUE data).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/install.sh"
python -m pytest -q -ra "$@"
