// Package caddywebhook plugs the webhook_verify handler into Caddy:
//
//	xcaddy build --with github.com/wagate/caddy-webhook
//
// The handler is in caddymodule/; verification and deduplication are the
// plain Go libraries verify/ and dedupe/.
package caddywebhook

import (
	_ "github.com/wagate/caddy-webhook/caddymodule"
	_ "github.com/wagate/caddy-webhook/webhookcmd"
)
