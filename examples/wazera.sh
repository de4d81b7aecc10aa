#!/bin/sh
# Sends one Wazera message.delivered event, signed the way Wazera signs:
# X-Wazera-Signature = hex HMAC-SHA256(secret, raw body). Signed with
# openssl, not with this project's code.
#
#	examples/wazera.sh [url]        default http://localhost:8080/wazera
set -eu
url=${1:-http://localhost:8080/wazera}
secret=${WAZERA_SECRET:-demo-wazera-secret}
now=$(date -u +%Y-%m-%dT%H:%M:%SZ)
body='{"event":"message.delivered","timestamp":"'$now'","data":{"message_id":"msg_'$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')'","to":"201234567890","status":"delivered","delivered_at":"'$now'"}}'
sig=$(printf '%s' "$body" | openssl dgst -sha256 -hmac "$secret" -r | cut -d' ' -f1)
curl -sS -w '\n%{http_code}\n' "$url" -H 'Content-Type: application/json' -H "X-Wazera-Signature: $sig" --data-binary "$body"
