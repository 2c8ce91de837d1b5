#!/usr/bin/env bash
# The compose file and the Kubernetes manifests, checked by real tools: docker-compose's own
# schema validation (Debian's docker-compose; no engine needed for `config`), yamllint, and the
# Kubernetes OpenAPI schemas (npm kubernetes-models) with gptd's own requirements.
set -euo pipefail
cd "$(dirname "$0")/../.."
docker-compose -f docker/compose.yaml config -q && echo "ok   - docker/compose.yaml is a valid compose file"
yamllint -d '{extends: relaxed, rules: {line-length: {max: 100}}}' docker/compose.yaml docker/k8s/ \
  && echo "ok   - yamllint"
[ -d tests/deploy/node_modules ] || npm ci --prefix tests/deploy --no-audit --no-fund >/dev/null
node tests/deploy/check_k8s.mjs docker/k8s
