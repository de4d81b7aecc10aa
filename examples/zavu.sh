#!/bin/sh
# Sends one Zavu message.inbound event in Zavu's current form:
# X-Zavu-Signature: t=<unix>,v1=<hex HMAC of body>,v2=<hex HMAC of "t.body">.
# The whsec_ secret is used as its raw bytes. Signed with openssl.
#
#	examples/zavu.sh [url]          default http://localhost:8080/zavu
set -eu
url=${1:-http://localhost:8080/zavu}
secret=${ZAVU_SECRET:-whsec_demo-zavu-secret}
t=$(date +%s)
ms=${t}000
body='{"id":"evt_'$ms'_'$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')'","type":"message.inbound","timestamp":'$ms',"projectId":"k57abc123def456","data":{"messageId":"k57msg456abc","from":"+56912345678","to":"+14155551234","channel":"whatsapp","text":"Hello, I need help with my order"}}'
v1=$(printf '%s' "$body" | openssl dgst -sha256 -hmac "$secret" -r | cut -d' ' -f1)
v2=$(printf '%s.%s' "$t" "$body" | openssl dgst -sha256 -hmac "$secret" -r | cut -d' ' -f1)
curl -sS -w '\n%{http_code}\n' "$url" -H 'Content-Type: application/json' -H "X-Zavu-Signature: t=$t,v1=$v1,v2=$v2" --data-binary "$body"
