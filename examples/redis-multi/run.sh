#!/bin/sh
# Two gateway instances sharing one Redis, in front of one demo app. Sends
# the same Wazera event to each instance: the first forwards it, the second
# answers that it is a duplicate. Needs redis-server (Debian package
# redis-server), which it starts with a demo password, unless REDIS_ADDR
# and REDIS_PASSWORD name a running Redis (the gateway refuses a password
# placeholder that expands to nothing: for a Redis without one, remove
# the password lines of gateway.Caddyfile). Runs ./caddy when it is there
# (make build refreshes it), or else builds it first.
#
#	examples/redis-multi/run.sh
#
# CADDY (a Caddy binary with this module), APP_PORT, GATEWAY_PORTS
# ("8081 8082") and REDIS_PORT (6390) override the defaults.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
tmp=$(mktemp -d)
pids=""
cleanup() { for p in $pids; do kill "$p" 2>/dev/null || true; done; rm -rf "$tmp"; }
trap cleanup EXIT INT TERM

export WAZERA_SECRET=${WAZERA_SECRET:-demo-wazera-secret}
export WAZAPIN_SECRET=${WAZAPIN_SECRET:-whsec_ZGVtby13YXphcGluLXNlY3JldA==}
export REDIS_PASSWORD=${REDIS_PASSWORD:-demo-redis-password}
export APP_PORT=${APP_PORT:-9091} APP_ADDR=127.0.0.1:${APP_PORT:-9091}

if [ -z "${REDIS_ADDR:-}" ]; then
	port=${REDIS_PORT:-6390}
	export REDIS_ADDR=127.0.0.1:$port
	redis-server --port "$port" --bind 127.0.0.1 --requirepass "$REDIS_PASSWORD" --save '' --appendonly no --dir "$tmp" --logfile "$tmp/redis.log" &
	pids="$pids $!"
fi

caddy=${CADDY:-$top/caddy}
if [ ! -x "$caddy" ]; then
	echo "building $caddy (the first build downloads and compiles Caddy: about 5 minutes on 2 cores)..."
	(cd "$top" && go build -o "$caddy" ./cmd/caddy)
fi
gateways=${GATEWAY_PORTS:-8081 8082}
"$caddy" run --adapter caddyfile --config "$here/app.Caddyfile" >"$tmp/app.log" 2>&1 &
pids="$pids $!"
for port in $gateways; do
	GATEWAY_PORT=$port "$caddy" run --adapter caddyfile --config "$here/gateway.Caddyfile" >"$tmp/gateway-$port.log" 2>&1 &
	pids="$pids $!"
done
for port in $gateways "$APP_PORT"; do
	i=0
	until curl -s -o /dev/null "http://127.0.0.1:$port/"; do
		i=$((i + 1)); [ $i -lt 100 ] || { echo "port $port did not come up" >&2; cat "$tmp"/*.log >&2; exit 1; }
		sleep 0.1
	done
done

now=$(date -u +%Y-%m-%dT%H:%M:%SZ)
body='{"event":"message.read","timestamp":"'$now'","data":{"message_id":"msg_'$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')'","status":"read"}}'
sig=$(printf '%s' "$body" | openssl dgst -sha256 -hmac "$WAZERA_SECRET" -r | cut -d' ' -f1)
for port in $gateways; do
	echo "--- instance :$port"
	curl -sS -w '\n%{http_code}\n' "http://127.0.0.1:$port/wazera" -H "X-Wazera-Signature: $sig" --data-binary "$body"
done
sleep 0.5 # let the app write its log
echo "--- the app received $(grep -c '"method":"POST"' "$tmp/app.log") event(s)"
