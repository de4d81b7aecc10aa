package caddymodule

import (
	"bytes"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/wagate/caddy-webhook/verify"
)

// Bodies are read once into a buffer and forwarded from there, never
// copied: the CloudEvent is sent as head, body, tail. Buffers come from a
// pool; those of requests answered here (rejects, duplicates) go back to it.
// A forwarded body's buffer does not: the transport may read it, or call
// GetBody to resend it, after the handler has returned.

var buffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// maxPooled is the largest buffer put back in the pool; bigger ones are
// left to the garbage collector rather than held between requests.
const maxPooled = 256 << 10

type body struct {
	buf  *bytes.Buffer
	head []byte // the CloudEvent before its payload
}

// readBody reads the request body through http.MaxBytesReader. A declared
// Content-Length above max is refused before reading.
func readBody(w http.ResponseWriter, r *http.Request, max int64) (*body, error) {
	if r.ContentLength > max {
		return nil, &http.MaxBytesError{Limit: max}
	}
	b := &body{buf: buffers.Get().(*bytes.Buffer)}
	b.buf.Reset()
	if r.ContentLength > 0 {
		b.buf.Grow(int(r.ContentLength))
	}
	_, err := b.buf.ReadFrom(http.MaxBytesReader(w, r.Body, max))
	r.Body.Close()
	if err != nil {
		b.free()
		return nil, err
	}
	return b, nil
}

func (b *body) Bytes() []byte { return b.buf.Bytes() }

// free returns the buffer to the pool; the body must not be used after.
func (b *body) free() {
	if b.buf != nil && b.buf.Cap() <= maxPooled {
		buffers.Put(b.buf)
	}
	b.buf = nil
}

// restore makes the original bytes the request body again.
func (b *body) restore(r *http.Request) {
	b.set(r, func() io.Reader { return bytes.NewReader(b.buf.Bytes()) }, int64(b.buf.Len()))
}

// cloudEvent makes the normalised event the request body.
func (b *body) cloudEvent(r *http.Request, ev *verify.Event) {
	b.head = ev.AppendCloudEventHead(make([]byte, 0, 512))
	payload := ev.Payload()
	b.set(r, func() io.Reader {
		return io.MultiReader(bytes.NewReader(b.head), bytes.NewReader(payload), strings.NewReader(verify.CloudEventTail))
	}, int64(len(b.head)+len(payload)+len(verify.CloudEventTail)))
	r.Header.Set("Content-Type", verify.CloudEventContentType)
}

func (b *body) set(r *http.Request, open func() io.Reader, n int64) {
	r.Body = io.NopCloser(open())
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(open()), nil }
	r.ContentLength = n
	r.TransferEncoding = nil
	r.Header.Set("Content-Length", strconv.FormatInt(n, 10))
}
