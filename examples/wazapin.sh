#!/bin/sh
# Sends one Wazapin message.new (inbound) delivery, signed as Standard
# Webhooks: key = base64-decoded whsec_ secret; webhook-signature =
# v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">. Signed with openssl.
#
#	examples/wazapin.sh [url]       default http://localhost:8080/wazapin
set -eu
url=${1:-http://localhost:8080/wazapin}
secret=${WAZAPIN_SECRET:-whsec_ZGVtby13YXphcGluLXNlY3JldA==}
key=$(printf '%s' "${secret#whsec_}" | openssl base64 -d -A | od -An -tx1 | tr -d ' \n')
id=msg_$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
ts=$(date +%s)
body='{"message_id":"9f1fd66d-c37a-4b50-a8c2-b4dca523f9c8","conversation_id":"0f89b0f9-74b4-44f9-b9b6-48f6d4de57aa","contact_id":"c1a2b3c4-d5e6-7890-abcd-ef1234567890","channel_id":"wzp_abc123","direction":"inbound","from_phone":"6281234567890","msg_type":"text"}'
sig=$(printf '%s.%s.%s' "$id" "$ts" "$body" | openssl dgst -sha256 -mac HMAC -macopt "hexkey:$key" -binary | openssl base64 -A)
curl -sS -w '\n%{http_code}\n' "$url" -H 'Content-Type: application/json' \
	-H "webhook-id: $id" -H "webhook-timestamp: $ts" -H "webhook-signature: v1,$sig" --data-binary "$body"
