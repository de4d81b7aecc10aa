package caddymodule

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/wagate/caddy-webhook/verify"
)

// A body is read once into a buffer and forwarded from there, never
// copied. The buffer keeps room before the body, where the CloudEvent's
// head is written, and after it, for the tail: the event is then one
// contiguous slice around the body's bytes, which net/http sends with the
// headers in one write (it does that only for in-memory readers).
//
// A body of known length gets a buffer of exactly its size; one of unknown
// length (chunked) starts from a pooled buffer and grows. Buffers of
// requests answered here (rejects, duplicates) go back to the pool; a
// forwarded body's buffer does not: the transport may read it, or call
// GetBody to resend it, after the handler has returned.

const (
	headroom = 2048 // room for the CloudEvent head; longer heads use a MultiReader
	tailroom = len(verify.CloudEventTail)
	// maxPooled is the largest buffer put back in the pool; bigger ones are
	// left to the garbage collector rather than held between requests.
	maxPooled = 256 << 10
)

var buffers = sync.Pool{New: func() any { b := make([]byte, 0, headroom+4096); return &b }}

type body struct {
	buf *[]byte // headroom, then the body
}

// readBody reads the request body through http.MaxBytesReader. A declared
// Content-Length above max is refused before reading.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) (*body, error) {
	if r.ContentLength > limit {
		return nil, &http.MaxBytesError{Limit: limit}
	}
	b := &body{}
	var buf []byte
	if r.ContentLength >= 0 {
		// known length: exactly the room needed, and one byte for the read
		// that finds the end
		p := make([]byte, headroom, headroom+int(r.ContentLength)+tailroom+1)
		b.buf, buf = &p, p
	} else {
		b.buf = buffers.Get().(*[]byte)
		buf = (*b.buf)[:headroom]
	}
	rd := http.MaxBytesReader(w, r.Body, limit)
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)] // grow
		}
		n, err := rd.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			*b.buf = buf
			b.free()
			r.Body.Close()
			return nil, err
		}
	}
	r.Body.Close()
	*b.buf = buf
	return b, nil
}

// Bytes returns the body as received.
func (b *body) Bytes() []byte { return (*b.buf)[headroom:] }

// free returns the buffer to the pool; the body must not be used after.
func (b *body) free() {
	if b.buf != nil && cap(*b.buf) <= maxPooled {
		buffers.Put(b.buf)
	}
	b.buf = nil
}

// restore makes the original bytes the request body again.
func (b *body) restore(r *http.Request) {
	set(r, b.Bytes())
}

// cloudEvent makes the normalised event the request body.
func (b *body) cloudEvent(r *http.Request, ev *verify.Event) {
	r.Header.Set("Content-Type", verify.CloudEventContentType)
	var scratch [1024]byte
	head := ev.AppendCloudEventHead(scratch[:0])
	payload := ev.Payload() // a slice of the buffer, after the headroom
	buf := *b.buf
	start := cap(buf) - cap(payload) // payload's offset in buf
	end := start + len(payload)
	if len(head) <= start && end+tailroom <= cap(buf) {
		copy(buf[start-len(head):], head)
		buf = buf[:end+tailroom]
		copy(buf[end:], verify.CloudEventTail)
		set(r, buf[start-len(head):])
		return
	}
	// a head longer than the room before the body (a very long text field)
	head = append([]byte(nil), head...)
	open := func() io.Reader {
		return io.MultiReader(bytes.NewReader(head), bytes.NewReader(payload), strings.NewReader(verify.CloudEventTail))
	}
	n := int64(len(head) + len(payload) + len(verify.CloudEventTail))
	r.Body = io.NopCloser(open())
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(open()), nil }
	setLength(r, n)
}

// set makes p the request body, as an in-memory reader.
func set(r *http.Request, p []byte) {
	r.Body = io.NopCloser(bytes.NewReader(p))
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(p)), nil }
	setLength(r, int64(len(p)))
}

func setLength(r *http.Request, n int64) {
	r.ContentLength = n
	r.TransferEncoding = nil
	r.Header.Set("Content-Length", strconv.FormatInt(n, 10))
}
