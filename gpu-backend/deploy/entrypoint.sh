#!/bin/sh
# Container entry: SageMaker runs `<image> serve` for endpoints and `<image> train` for training jobs.
set -eu
# PROTOPOOL_CLI: for trying this script outside the image.
cli="${PROTOPOOL_CLI:-/app/gpu-backend/bin/protopool.js}"
cmd="${1:-serve}"
if [ "$#" -gt 0 ]; then shift; fi
case "$cmd" in
  # exec: node becomes PID 1 and gets SageMaker's SIGTERM itself (serve drains, train checkpoints).
  # PROTOPOOL_SERVE_ARGS (e.g. "--max-batch 64") comes from the model's environment; unquoted on purpose.
  # shellcheck disable=SC2086
  serve) exec node "$cli" serve ${PROTOPOOL_SERVE_ARGS:-} "$@" ;;
  train) exec node "$cli" sagemaker-train "$@" ;;
  # Anything else (`protopool evaluate …`, `sh`) runs as given, for debugging the image.
  protopool) exec node "$cli" "$@" ;;
  *) exec "$cmd" "$@" ;;
esac
