#!/usr/bin/env bash
# Reports a CI result to TasksGodzilla as a signed webhook, from any CI system.
#   scripts/ci-report.sh success|failure|running
# Environment:
#   TASKSGODZILLA_API_BASE          the server, e.g. http://127.0.0.1:8010 (required)
#   TASKSGODZILLA_WEBHOOK_TOKEN     the webhook secret (required unless the server allows unsigned webhooks)
#   TASKSGODZILLA_CI_PROVIDER       github (default: HMAC-signed "status" event) or gitlab (token header)
#   TASKSGODZILLA_PROTOCOL_RUN_ID   the run, when the branch does not name it
#   TASKSGODZILLA_BRANCH            the branch (default: the current git branch)
#   TASKSGODZILLA_TARGET_URL        a link to the CI job
set -euo pipefail

state="${1:?usage: ci-report.sh success|failure|running}"
base="${TASKSGODZILLA_API_BASE:?set TASKSGODZILLA_API_BASE}"
provider="${TASKSGODZILLA_CI_PROVIDER:-github}"
branch="${TASKSGODZILLA_BRANCH:-$(git rev-parse --abbrev-ref HEAD 2>/dev/null || echo "")}"
token="${TASKSGODZILLA_WEBHOOK_TOKEN:-}"
query=""
[ -n "${TASKSGODZILLA_PROTOCOL_RUN_ID:-}" ] && query="?protocol_run_id=${TASKSGODZILLA_PROTOCOL_RUN_ID}"

json_string() { printf '%s' "$1" | sed 's/\\/\\\\/g; s/"/\\"/g'; }

case "$provider" in
  github)
    [ "$state" = "running" ] && state="pending"
    body="{\"state\":\"$(json_string "$state")\",\"branches\":[{\"name\":\"$(json_string "$branch")\"}],\"target_url\":\"$(json_string "${TASKSGODZILLA_TARGET_URL:-}")\",\"ref\":\"$(json_string "$branch")\"}"
    signature=""
    if [ -n "$token" ]; then
      signature="sha256=$(printf '%s' "$body" | openssl dgst -sha256 -hmac "$token" | sed 's/^.*= //')"
    fi
    curl -fsS -X POST "$base/webhooks/github$query" -H "content-type: application/json" \
      -H "x-github-event: status" ${signature:+-H "x-hub-signature-256: $signature"} --data "$body"
    ;;
  gitlab)
    [ "$state" = "failure" ] && state="failed"
    body="{\"object_kind\":\"pipeline\",\"object_attributes\":{\"status\":\"$(json_string "$state")\",\"ref\":\"$(json_string "$branch")\"}}"
    curl -fsS -X POST "$base/webhooks/gitlab$query" -H "content-type: application/json" \
      ${token:+-H "x-gitlab-token: $token"} --data "$body"
    ;;
  *)
    echo "TASKSGODZILLA_CI_PROVIDER must be github or gitlab" >&2
    exit 2
    ;;
esac
echo
