#!/bin/sh
# Sends one WAStack message.received event:
# X-WAStack-Signature: sha256=<hex HMAC-SHA256(secret, raw body)>. Signed with openssl.
#
#	examples/wastack.sh [url]       default http://localhost:8080/wastack
set -eu
url=${1:-http://localhost:8080/wastack}
secret=${WASTACK_SECRET:-demo-wastack-secret}
body='{"id":"wse_'$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')'","event":"message.received","timestamp":"'$(date -u +%Y-%m-%dT%H:%M:%SZ)'","session_id":"sess_01","data":{"message_id":"wamid.HBgM","from":"6281234567890","text":"Halo, apakah pesanan saya sudah dikirim?"}}'
sig=$(printf '%s' "$body" | openssl dgst -sha256 -hmac "$secret" -r | cut -d' ' -f1)
curl -sS -w '\n%{http_code}\n' "$url" -H 'Content-Type: application/json' -H "X-WAStack-Signature: sha256=$sig" --data-binary "$body"
