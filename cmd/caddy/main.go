// Command caddy is Caddy with its standard modules and the webhook_verify
// handler: what `xcaddy build --with github.com/wagate/caddy-webhook` builds.
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	_ "github.com/caddyserver/caddy/v2/modules/standard"
)

func main() {
	caddycmd.Main()
}
