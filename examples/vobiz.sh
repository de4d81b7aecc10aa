#!/bin/sh
# Sends one Vobiz message.received event in Vobiz's current form:
# X-Webhook-Signature: <hex HMAC-SHA256(secret, raw body)>, X-Webhook-Event,
# and the event_id/event_type/occurred_at/payload envelope. Signed with openssl.
#
#	examples/vobiz.sh [url]         default http://localhost:8080/vobiz
set -eu
url=${1:-http://localhost:8080/vobiz}
secret=${VOBIZ_SECRET:-demo-vobiz-secret}
u=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
uuid=$(printf '%s-%s-4%s-a%s-%s' "$(echo "$u" | cut -c1-8)" "$(echo "$u" | cut -c9-12)" "$(echo "$u" | cut -c14-16)" "$(echo "$u" | cut -c18-20)" "$(echo "$u" | cut -c21-32)")
body='{"event_id":"'$uuid'","event_type":"message.received","account_id":"acc_9f2c","occurred_at":"'$(date -u +%Y-%m-%dT%H:%M:%SZ)'","payload":{"message_id":"wamid.X1","from":"919876543210","to":"918001234567","text":"Namaste, I want to reschedule my delivery"}}'
sig=$(printf '%s' "$body" | openssl dgst -sha256 -hmac "$secret" -r | cut -d' ' -f1)
curl -sS -w '\n%{http_code}\n' "$url" -H 'Content-Type: application/json' \
	-H "X-Webhook-Signature: $sig" -H 'X-Webhook-Event: message.received' --data-binary "$body"
