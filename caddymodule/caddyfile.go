package caddymodule

import (
	"strconv"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/dustin/go-humanize"

	"github.com/wagate/caddy-webhook/verify"
)

func init() {
	httpcaddyfile.RegisterDirective("webhook_verify", parseDirective)
	// with the authentication directives: at site level it runs before
	// handle, handle_path, route, respond, abort, error and reverse_proxy,
	// so no layout can answer or forward a request it has not verified
	httpcaddyfile.RegisterDirectiveOrder("webhook_verify", httpcaddyfile.After, "forward_auth")
}

// parseDirective is what RegisterHandlerDirective would register, but
// refuses a matcher: a request that the verifier's matcher skips goes on,
// unverified, to the handlers after it, and a reverse_proxy without that
// matcher forwards it. A verifier for one path goes inside that path's
// handle block, which also keeps it to exactly what that block serves.
func parseDirective(h httpcaddyfile.Helper) ([]httpcaddyfile.ConfigValue, error) {
	if !h.Next() {
		return nil, h.ArgErr()
	}
	matcherSet, err := h.ExtractMatcherSet()
	if err != nil {
		return nil, err
	}
	if matcherSet != nil {
		h.Next() // back on the directive's own token, for the error's file and line
		return nil, h.Errf("webhook_verify takes no matcher: a request the matcher skips would reach the handlers after it unverified. Put the verifier inside the block that serves the path, with a catch-all beside it: handle /wazera { webhook_verify wazera { ... } reverse_proxy ... } handle { error 404 }")
	}
	m, err := parseCaddyfile(h)
	if err != nil {
		return nil, err
	}
	return h.NewRoute(nil, m), nil
}

func parseCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	m := new(Handler)
	err := m.UnmarshalCaddyfile(h.Dispenser)
	return m, err
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. Syntax:
//
//	webhook_verify <provider> {
//	    secret <secret>                  # repeat during a rotation
//	    name <name>                      # standard: the source name
//	    tolerance <duration>
//	    max_age <duration>
//	    future_skew <duration>
//	    max_body <size>
//	    dedupe off|memory|redis {
//	        key_prefix <prefix>
//	        max_entries <n>              # memory
//	        address <host:port...>       # redis, and the options below
//	        username <username>
//	        password <password>
//	        db <n>
//	        master_name <name>
//	        sentinel_username <username>
//	        sentinel_password <password>
//	        cluster
//	        tls
//	        tls_ca_file <path>
//	        tls_server_name <name>
//	        tls_cert_file <path>
//	        tls_key_file <path>
//	        timeout <duration>
//	        dial_timeout <duration>
//	        read_timeout <duration>
//	        write_timeout <duration>
//	        pool_size <n>
//	    }
//	    dedupe_ttl <duration>
//	    in_flight_ttl <duration>
//	    on_store_error open|closed
//	    format cloudevents|raw
//	    enforce on|off
//	    archive <dir> {
//	        retention <duration>         # default 7d
//	        max_size <size>              # default 10GiB
//	        rejected headers|body|off    # default headers
//	        sync interval|always         # default interval
//	    }
//	    custom {                         # provider custom only
//	        name <name>
//	        signature_header <header>
//	        signature_prefix <prefix>
//	        algorithm sha256|sha512|sha1
//	        encoding hex|base64
//	        signed <template>            # e.g. "{timestamp}.{body}"
//	        timestamp_header <header>
//	        timestamp_field <path>
//	        timestamp_kind event|attempt
//	        id_header <header>
//	        id_field <path>
//	        type_field <path>
//	        type_header <header>
//	    }
//	}
//
// Unknown and repeated subdirectives are errors, except secret, which
// repeats.
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // directive name
	if !d.Args(&h.Provider) {
		return d.Errf("webhook_verify needs a provider: %s", knownProviders())
	}
	if d.NextArg() {
		return d.ArgErr()
	}
	seen := map[string]bool{}
	for d.NextBlock(0) {
		opt := d.Val()
		if seen[opt] && opt != "secret" {
			return d.Errf("%s given twice", opt)
		}
		seen[opt] = true
		var err error
		switch opt {
		case "secret":
			var s string
			if err = oneArg(d, &s); err == nil {
				h.Secrets = append(h.Secrets, s)
			}
		case "name":
			err = oneArg(d, &h.Name)
		case "tolerance":
			err = durationArg(d, &h.Tolerance)
		case "max_age":
			err = durationArg(d, &h.MaxAge)
		case "future_skew":
			err = durationArg(d, &h.FutureSkew)
		case "dedupe_ttl":
			err = durationArg(d, &h.DedupeTTL)
		case "in_flight_ttl":
			err = durationArg(d, &h.InFlightTTL)
		case "max_body":
			var s string
			if err = oneArg(d, &s); err == nil {
				n, perr := humanize.ParseBytes(s)
				if perr != nil || n == 0 {
					return d.Errf("max_body %q: use a size such as 1MiB", s)
				}
				h.MaxBody = int64(n)
			}
		case "on_store_error":
			err = choiceArg(d, &h.OnStoreError, "open", "closed")
		case "format":
			err = choiceArg(d, &h.Format, "cloudevents", "raw")
		case "enforce":
			var s string
			if err = choiceArg(d, &s, "on", "off"); err == nil {
				on := s == "on"
				h.Enforce = &on
			}
		case "dedupe":
			err = h.unmarshalDedupe(d)
		case "custom":
			err = h.unmarshalCustom(d)
		case "archive":
			err = h.unmarshalArchive(d)
		default:
			return d.Errf("unrecognized subdirective %q", opt)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (h *Handler) unmarshalDedupe(d *caddyfile.Dispenser) error {
	h.Dedupe = &Dedupe{}
	if err := choiceArg(d, &h.Dedupe.Store, "off", "memory", "redis"); err != nil {
		return err
	}
	if h.Dedupe.Store == "redis" {
		h.Dedupe.Redis = &Redis{}
	}
	r := h.Dedupe.Redis
	seen := map[string]bool{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		if seen[opt] {
			return d.Errf("dedupe %s given twice", opt)
		}
		seen[opt] = true
		if opt == "key_prefix" {
			if err := oneArg(d, &h.Dedupe.KeyPrefix); err != nil {
				return err
			}
			continue
		}
		if h.Dedupe.Store == "memory" && opt == "max_entries" {
			if err := intArg(d, &h.Dedupe.MaxEntries); err != nil {
				return err
			}
			continue
		}
		if r == nil {
			return d.Errf("unrecognized dedupe %s option %q", h.Dedupe.Store, opt)
		}
		var err error
		switch opt {
		case "address":
			r.Address = d.RemainingArgs()
			if len(r.Address) == 0 {
				return d.ArgErr()
			}
		case "username":
			err = oneArg(d, &r.Username)
		case "password":
			err = oneArg(d, &r.Password)
		case "db":
			err = intArg(d, &r.DB)
		case "master_name":
			err = oneArg(d, &r.MasterName)
		case "sentinel_username":
			err = oneArg(d, &r.SentinelUsername)
		case "sentinel_password":
			err = oneArg(d, &r.SentinelPassword)
		case "cluster":
			err = flagArg(d, &r.Cluster)
		case "tls":
			err = flagArg(d, &r.TLS)
		case "tls_ca_file":
			err = oneArg(d, &r.TLSCAFile)
		case "tls_server_name":
			err = oneArg(d, &r.TLSServerName)
		case "tls_cert_file":
			err = oneArg(d, &r.TLSCertFile)
		case "tls_key_file":
			err = oneArg(d, &r.TLSKeyFile)
		case "timeout":
			err = durationArg(d, &r.Timeout)
		case "dial_timeout":
			err = durationArg(d, &r.DialTimeout)
		case "read_timeout":
			err = durationArg(d, &r.ReadTimeout)
		case "write_timeout":
			err = durationArg(d, &r.WriteTimeout)
		case "pool_size":
			err = intArg(d, &r.PoolSize)
		default:
			return d.Errf("unrecognized dedupe redis option %q", opt)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (h *Handler) unmarshalCustom(d *caddyfile.Dispenser) error {
	if d.NextArg() {
		return d.ArgErr()
	}
	c := &verify.Custom{}
	h.Custom = c
	fields := map[string]*string{
		"name": &c.Name, "signature_header": &c.SignatureHeader, "signature_prefix": &c.SignaturePrefix,
		"algorithm": &c.Algorithm, "encoding": &c.Encoding, "signed": &c.Signed,
		"timestamp_header": &c.TimestampHeader, "timestamp_field": &c.TimestampField, "timestamp_kind": &c.TimestampKind,
		"id_header": &c.IDHeader, "id_field": &c.IDField, "type_field": &c.TypeField, "type_header": &c.TypeHeader,
	}
	seen := map[string]bool{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		field, ok := fields[opt]
		if !ok {
			return d.Errf("unrecognized custom option %q", opt)
		}
		if seen[opt] {
			return d.Errf("custom %s given twice", opt)
		}
		seen[opt] = true
		if err := oneArg(d, field); err != nil {
			return err
		}
	}
	return nil
}

func oneArg(d *caddyfile.Dispenser, s *string) error {
	if !d.Args(s) || d.NextArg() {
		return d.ArgErr()
	}
	return nil
}

func flagArg(d *caddyfile.Dispenser, b *bool) error {
	if d.NextArg() {
		return d.ArgErr()
	}
	*b = true
	return nil
}

func choiceArg(d *caddyfile.Dispenser, s *string, choices ...string) error {
	opt := d.Val()
	if err := oneArg(d, s); err != nil {
		return err
	}
	for _, c := range choices {
		if *s == c {
			return nil
		}
	}
	return d.Errf("%s %q: use one of %v", opt, *s, choices)
}

func durationArg(d *caddyfile.Dispenser, t *caddy.Duration) error {
	opt := d.Val()
	var s string
	if err := oneArg(d, &s); err != nil {
		return err
	}
	v, err := caddy.ParseDuration(s)
	if err != nil || v <= 0 {
		return d.Errf("%s %q: use a positive duration such as 5m or 48h", opt, s)
	}
	*t = caddy.Duration(v)
	return nil
}

func intArg(d *caddyfile.Dispenser, n *int) error {
	opt := d.Val()
	var s string
	if err := oneArg(d, &s); err != nil {
		return err
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < 0 {
		return d.Errf("%s %q: use a whole number", opt, s)
	}
	*n = v
	return nil
}

var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.Validator             = (*Handler)(nil)
	_ caddy.CleanerUpper          = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
	_ caddyfile.Unmarshaler       = (*Handler)(nil)
)
