// Package inspector serves a read-only web page and JSON API over a
// webhook archive (package archive): every delivery the gateway answered,
// and why one was rejected. It imports nothing from Caddy; the
// webhook_inspector Caddy handler in caddymodule/ is its thin adapter.
//
// Mounted under any path prefix, it answers:
//
//	GET <prefix>/                    the page (index.html, app.js, style.css, embedded)
//	GET <prefix>/api/events          recent requests, newest first:
//	                                 ?provider=&verdict=&q=&since=&limit=&cursor=
//	GET <prefix>/api/events/<record> one request record with its outcome and diagnosis
//	GET <prefix>/api/stats           counts per minute over the last hour
//	GET <prefix>/api/stream          server-sent events: new records as they are written
//
// Only GET and HEAD are answered (405 otherwise): nothing can be changed
// through it. Payloads are masked (phone numbers, message texts, names)
// unless Options.ShowPayloads is set; no answer ever holds a secret: the
// archive holds none, and credentials headers are redacted in it.
package inspector

import (
	"embed"
	"io/fs"
	"net"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/wagate/caddy-webhook/archive"
)

//go:embed assets
var assets embed.FS

// ContentSecurityPolicy is sent with every answer: scripts and styles
// only from the page's own origin, no inline script, no request to any
// other origin, no framing.
const ContentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// Defaults.
const (
	DefaultLimit     = 50
	MaxLimit         = 500
	DefaultSince     = 24 * time.Hour
	DefaultPoll      = time.Second
	DefaultMaxStream = 10 * time.Minute
	MaxStreams       = 16
)

// Options configure an Inspector.
type Options struct {
	// Dir is the archive directory. Required.
	Dir string
	// ShowPayloads shows bodies as received; by default phone numbers,
	// message texts and names in them are masked.
	ShowPayloads bool
	// Public answers clients that are not on loopback too; by default
	// they get 403.
	Public bool
	// ClientIP returns the client's address for the loopback check;
	// default the host of the request's RemoteAddr.
	ClientIP func(*http.Request) string
	// Now returns the gateway's clock; default time.Now.
	Now func() time.Time
	// Warn is told of archive lines and files skipped; nil ignores them.
	Warn func(file string, line int, msg string)
	// Poll is how often the stream looks for new records; default 1s.
	Poll time.Duration
	// MaxStream is how long one stream stays open (the page reconnects);
	// default 10m.
	MaxStream time.Duration
}

// Inspector is an http.Handler. It is safe for concurrent use.
type Inspector struct {
	o       Options
	reader  *archive.Reader
	files   http.Handler
	streams chan struct{} // one token per open stream
}

// New returns an Inspector over the archive in o.Dir.
func New(o Options) *Inspector {
	if o.ClientIP == nil {
		o.ClientIP = remoteHost
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Poll <= 0 {
		o.Poll = DefaultPoll
	}
	if o.MaxStream <= 0 {
		o.MaxStream = DefaultMaxStream
	}
	sub, err := fs.Sub(assets, "assets")
	if err != nil {
		panic(err) // the embedded directory is part of the build
	}
	return &Inspector{
		o:       o,
		reader:  &archive.Reader{Dir: o.Dir, Warn: o.Warn},
		files:   http.FileServerFS(sub),
		streams: make(chan struct{}, MaxStreams),
	}
}

// assetNames are the files of the page.
var assetNames = map[string]bool{"app.js": true, "style.css": true, "favicon.svg": true}

// ServeHTTP answers the page, its assets and the API. The path is matched
// by its end, so the inspector works under any prefix and behind
// handle_path.
func (in *Inspector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", ContentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
	if !in.o.Public && !IsLoopback(in.o.ClientIP(r)) {
		http.Error(w, "webhook inspector: loopback clients only (set public, behind authentication, to open it)", http.StatusForbidden)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		h.Set("Allow", "GET, HEAD")
		http.Error(w, "webhook inspector: read-only, use GET", http.StatusMethodNotAllowed)
		return
	}
	p := r.URL.Path
	if i := strings.LastIndex(p, "/api/"); i >= 0 {
		h.Set("Cache-Control", "no-store")
		in.api(w, r, p[i+len("/api/"):])
		return
	}
	name := path.Base(p)
	if assetNames[name] {
		in.serveAsset(w, r, "/"+name)
		return
	}
	if !strings.HasSuffix(p, "/") {
		// relative links need the trailing slash; redirect to the path
		// as the client sent it, which a prefix strip does not change
		orig, _, _ := strings.Cut(r.RequestURI, "?")
		if orig == "" || orig[0] != '/' {
			orig = p
		}
		http.Redirect(w, r, orig+"/", http.StatusFound)
		return
	}
	in.serveAsset(w, r, "/")
}

func (in *Inspector) serveAsset(w http.ResponseWriter, r *http.Request, name string) {
	r2 := r.Clone(r.Context())
	r2.URL.Path, r2.URL.RawPath = name, ""
	w.Header().Set("Cache-Control", "no-cache")
	in.files.ServeHTTP(w, r2)
}

func (in *Inspector) api(w http.ResponseWriter, r *http.Request, rest string) {
	switch {
	case rest == "events":
		in.list(w, r)
	case strings.HasPrefix(rest, "events/") && !strings.Contains(rest[len("events/"):], "/"):
		in.detail(w, r, rest[len("events/"):])
	case rest == "stats":
		in.stats(w, r)
	case rest == "stream":
		in.stream(w, r)
	default:
		writeError(w, http.StatusNotFound, "no such endpoint")
	}
}

// remoteHost returns the host part of r.RemoteAddr.
func remoteHost(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// IsLoopback reports whether addr (an IP, with or without a port) is a
// loopback address.
func IsLoopback(addr string) bool {
	if host, _, err := net.SplitHostPort(addr); err == nil {
		addr = host
	}
	ip := net.ParseIP(strings.Trim(addr, "[]"))
	return ip != nil && ip.IsLoopback()
}
