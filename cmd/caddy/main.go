// Command caddy is Caddy with its standard modules and the webhook_verify
// handler: the program that `xcaddy build --with github.com/wagate/caddy-webhook`
// generates, kept here so the project builds without xcaddy.
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	// plug in Caddy modules here
	_ "github.com/caddyserver/caddy/v2/modules/standard"
	_ "github.com/wagate/caddy-webhook"
)

func main() {
	caddycmd.Main()
}
