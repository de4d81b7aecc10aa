package caddymodule

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/wagate/caddy-webhook/inspector"
)

func init() {
	caddy.RegisterModule(Inspector{})
	httpcaddyfile.RegisterHandlerDirective("webhook_inspector", parseInspector)
	// a terminal handler, like file_server: it answers, and never calls the
	// next handler; the authentication directives run before it
	httpcaddyfile.RegisterDirectiveOrder("webhook_inspector", httpcaddyfile.Before, "file_server")
}

// Inspector serves a read-only web page and JSON API over a webhook_verify
// archive: every request the gateway answered, its verdict, and why one
// was rejected. Mount it on a path you protect, in a handle beside the
// webhook routes (a route block would run after the site's catch-all
// handle):
//
//	handle /_webhooks* {
//	    basic_auth { admin <hash> }
//	    webhook_inspector {
//	        archive /var/lib/caddy/webhooks
//	        public
//	    }
//	}
//
// Under its path it answers the page, and GET api/events,
// api/events/{record}, api/stats and api/stream (server-sent events).
// Only GET and HEAD; nothing can be changed through it. By default it
// answers only loopback clients (Caddy's client IP, which honours
// trusted_proxies); others get 403.
type Inspector struct {
	// Archive is the archive directory of the webhook_verify handlers to
	// show. Takes placeholders such as {env.ARCHIVE_DIR}. Required.
	Archive string `json:"archive,omitempty"`
	// ShowPayloads shows bodies as received. Default false: phone
	// numbers, message texts and names in payloads are masked.
	ShowPayloads bool `json:"show_payloads,omitempty"`
	// Public answers clients that are not on loopback. Put an
	// authentication handler (basic_auth, forward_auth) before it: the
	// inspector shows headers and payloads. Default false.
	Public bool `json:"public,omitempty"`

	in     *inspector.Inspector
	logger *zap.Logger
	warned *atomic.Bool // one warning per config: a request no authentication handler checked
}

// CaddyModule returns the Caddy module information.
func (Inspector) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.webhook_inspector",
		New: func() caddy.Module { return new(Inspector) },
	}
}

// Provision expands the archive directory and builds the inspector.
func (n *Inspector) Provision(ctx caddy.Context) error {
	n.logger = ctx.Logger()
	n.warned = new(atomic.Bool)
	dir, err := expand(caddy.NewReplacer(), "archive", n.Archive)
	if err != nil {
		return err
	}
	if dir == "" {
		return errors.New("webhook_inspector needs an archive directory")
	}
	if dir, err = filepath.Abs(dir); err != nil {
		return fmt.Errorf("archive %s: %w", n.Archive, err)
	}
	if info, err := os.Stat(dir); err == nil && !info.IsDir() {
		return fmt.Errorf("archive %s: not a directory", dir)
	}
	if n.Public {
		// a handler cannot see the handlers before it in its route, so
		// this warns whenever public is set; ServeHTTP warns again, once,
		// when a request arrives that no authentication handler checked
		n.logger.Warn("webhook_inspector is public: it shows webhook headers and payloads to any client; put basic_auth or forward_auth before it",
			zap.String("archive", dir))
	}
	logger := n.logger
	n.in = inspector.New(inspector.Options{
		Dir:          dir,
		ShowPayloads: n.ShowPayloads,
		Public:       n.Public,
		ClientIP: func(r *http.Request) string {
			if ip, ok := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string); ok && ip != "" {
				return ip
			}
			return r.RemoteAddr
		},
		Warn: func(file string, line int, msg string) {
			logger.Debug("archive line skipped", zap.String("file", file), zap.Int("line", line), zap.String("why", msg))
		},
	})
	return nil
}

// ServeHTTP answers the page and the API; it never calls next.
func (n *Inspector) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	if n.Public && !n.warned.Load() {
		// caddyauth sets http.auth.user.id on every request it lets through
		repl, _ := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
		if user, _ := repl.Get("http.auth.user.id"); user == nil || user == "" {
			if n.warned.CompareAndSwap(false, true) {
				n.logger.Warn("webhook_inspector is public and answered a request that no authentication handler checked",
					zap.String("path", r.URL.Path))
			}
		}
	}
	n.in.ServeHTTP(w, r)
	return nil
}

// UnmarshalCaddyfile sets up the inspector from Caddyfile tokens. Syntax:
//
//	webhook_inspector [<matcher>] {
//	    archive <dir>               # required
//	    show_payloads on|off        # default off: payloads masked
//	    public                      # default: loopback clients only
//	}
//
// Unknown and repeated options are errors.
func (n *Inspector) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the directive's name
	if d.NextArg() {
		return d.ArgErr()
	}
	seen := map[string]bool{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		if seen[opt] {
			return d.Errf("webhook_inspector %s given twice", opt)
		}
		seen[opt] = true
		switch opt {
		case "archive":
			if err := oneArg(d, &n.Archive); err != nil {
				return err
			}
		case "show_payloads":
			var v string
			if err := choiceArg(d, &v, "on", "off"); err != nil {
				return err
			}
			n.ShowPayloads = v == "on"
		case "public":
			if d.NextArg() {
				return d.ArgErr()
			}
			n.Public = true
		default:
			return d.Errf("unrecognized subdirective %q", opt)
		}
	}
	if n.Archive == "" {
		return d.Err("webhook_inspector needs an archive directory: archive <dir>")
	}
	return nil
}

func parseInspector(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	n := new(Inspector)
	err := n.UnmarshalCaddyfile(h.Dispenser)
	return n, err
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Inspector)(nil)
	_ caddyhttp.MiddlewareHandler = (*Inspector)(nil)
	_ caddyfile.Unmarshaler       = (*Inspector)(nil)
)
