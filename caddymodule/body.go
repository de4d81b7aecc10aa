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

// A body is read once into a pooled buffer. The buffer follows what
// actually arrived, not what the request declares: it starts from the pool
// and doubles as bytes come in, up to what the declared Content-Length (or
// max_body) can need, so a client that sends headers and no body pins one
// small buffer.
//
// What is forwarded is one contiguous in-memory slice, which net/http
// sends with the headers in one write (it does that only for in-memory
// readers). A body up to copyLimit is forwarded from an exact copy (the
// CloudEvent's head, the payload, the tail; or the raw bytes), so its
// buffer goes back to the pool when the handler returns. A larger one is
// forwarded in place: the buffer keeps room before the body, where the
// CloudEvent's head is written, and after it, for the tail, and it is
// handed to the next handler for good (the transport may read it, or call
// GetBody to resend it, after the handler has returned). The handler owns
// the buffer until then: release, which it defers, puts it back in the
// pool unless it was handed off.

const (
	headroom = 2048 // room for the CloudEvent head; longer heads use a MultiReader
	tailroom = len(verify.CloudEventTail)
	// pooledSize is the capacity of a new pooled buffer: a typical webhook
	// fits without growing.
	pooledSize = headroom + 4096
	// maxPooled is the largest buffer put back in the pool; bigger ones are
	// left to the garbage collector rather than held between requests.
	maxPooled = 256 << 10
	// copyLimit is the largest body forwarded from a copy: copying it costs
	// less than the garbage of a buffer that never returns to the pool.
	copyLimit = 64 << 10
)

var cloudEventType = []string{verify.CloudEventContentType} // shared, never changed

var buffers = sync.Pool{New: func() any { b := make([]byte, 0, pooledSize); return &b }}

type body struct {
	buf *[]byte // headroom, then the body; nil once released or handed off
}

// readBody reads the request body through http.MaxBytesReader. A declared
// Content-Length above limit is refused before reading.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) (*body, error) {
	defer r.Body.Close()
	if r.ContentLength > limit {
		return nil, &http.MaxBytesError{Limit: limit}
	}
	// the most this request can need: the room around the body, the body
	// as declared (or at most limit), and one byte for the read that finds
	// the end
	need := limit
	if r.ContentLength >= 0 {
		need = r.ContentLength
	}
	most := headroom + int(need) + tailroom + 1
	b := &body{buf: buffers.Get().(*[]byte)}
	buf := (*b.buf)[:headroom]
	rd := http.MaxBytesReader(w, r.Body, limit)
	for {
		if len(buf) == cap(buf) {
			grown := make([]byte, len(buf), max(min(2*cap(buf), most), len(buf)+512))
			copy(grown, buf)
			b.release()
			b.buf, buf = &grown, grown
		}
		n, err := rd.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			b.release()
			return nil, err
		}
	}
	*b.buf = buf
	return b, nil
}

// Bytes returns the body as received.
func (b *body) Bytes() []byte { return (*b.buf)[headroom:] }

// release returns the buffer to the pool, unless it was handed off; the
// body must not be used after.
func (b *body) release() {
	if b.buf != nil && cap(*b.buf) <= maxPooled {
		*b.buf = (*b.buf)[:0]
		buffers.Put(b.buf)
	}
	b.buf = nil
}

// handOff makes the request's body the normalised event when ev is not
// nil, the bytes as received otherwise. head is ev's CloudEvent head when
// the caller built it already; nil builds it here.
func (b *body) handOff(r *http.Request, ev *verify.Event, head []byte) {
	if ev != nil {
		r.Header["Content-Type"] = cloudEventType
		// these describe the body as received, not the event
		for _, name := range [...]string{"Content-Encoding", "Content-Md5", "Digest", "Content-Digest", "Repr-Digest"} {
			delete(r.Header, name)
		}
	}
	if len(b.Bytes()) > copyLimit {
		if ev != nil {
			b.cloudEvent(r, ev, head)
		} else {
			set(r, b.Bytes())
		}
		b.buf = nil // the next handler's now
		return
	}
	var out []byte
	if ev != nil {
		var scratch [1024]byte
		if head == nil {
			head = ev.AppendCloudEventHead(scratch[:0])
		}
		payload := ev.Payload()
		out = make([]byte, 0, len(head)+len(payload)+tailroom)
		out = append(append(append(out, head...), payload...), verify.CloudEventTail...)
	} else {
		out = append(make([]byte, 0, len(b.Bytes())), b.Bytes()...)
	}
	set(r, out) // the buffer stays ours: release puts it back
}

// cloudEvent makes the normalised event the request body, in place around
// the payload; head as for handOff.
func (b *body) cloudEvent(r *http.Request, ev *verify.Event, head []byte) {
	var scratch [1024]byte
	if head == nil {
		head = ev.AppendCloudEventHead(scratch[:0])
	}
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
	r.Trailer = nil // the body was read whole: trailers would only carry what a client chose
	r.Header.Set("Content-Length", strconv.FormatInt(n, 10))
}
