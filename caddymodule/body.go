package caddymodule

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/wagate/caddy-webhook/verify"
)

// A body is read once into a pooled buffer. The buffer follows what
// actually arrived, not what the request declares: it starts from the pool
// and doubles as bytes come in, up to what the declared Content-Length (or
// max_body) can need, so a client that sends headers and no body pins one
// small buffer.
//
// What is forwarded is built in that buffer: it keeps room before the
// body, where the CloudEvent's head is written, and after it, for the
// tail; the raw format forwards the bytes as received. The next handler
// reads it through readers of ours (the request's Body, and one more for
// each GetBody, which the transport calls to resend), and the buffer goes
// back to the pool only once the handler has returned and every one of
// those readers was closed: the transport may still be writing the body,
// or resend it, while the handler is waiting, and Caddy's reverse_proxy
// closes the body once it has sent it, or copied it with request_buffers.
// A reader that is never closed leaves the buffer to the garbage
// collector. A read after Close fails rather than see a buffer that may
// already hold another request.

const (
	headroom = 2048 // room for the CloudEvent head; a longer head is forwarded from a copy
	tailroom = len(verify.CloudEventTail)
	// pooledSize is the capacity of a new pooled buffer: a typical webhook
	// fits without growing.
	pooledSize = headroom + 4096
	// maxPooled is the largest buffer put back in the pool; bigger ones are
	// left to the garbage collector rather than held between requests.
	maxPooled = 256 << 10
)

var cloudEventType = []string{verify.CloudEventContentType} // shared, never changed

var buffers = sync.Pool{New: func() any { b := make([]byte, 0, pooledSize); return &b }}

type body struct {
	buf *[]byte // headroom, then the body; nil once released or handed off

	// once handed off
	out  []byte       // what is forwarded
	sent *[]byte      // the buffer out is in; nil when out is a copy
	refs atomic.Int32 // the handler, and each reader not yet closed
	body reader       // the request's Body
}

// reader reads what a body forwards. Read and Close may come from two
// goroutines (Go's HTTP/2 client closes a request body from its own while
// the writer may be reading): a Read holds the lock while it copies, so
// the buffer cannot go back to the pool under it.
type reader struct {
	b      *body
	mu     sync.Mutex
	r      bytes.Reader
	closed bool
}

func (x *reader) Read(p []byte) (int, error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.closed {
		return 0, http.ErrBodyReadAfterClose
	}
	return x.r.Read(p)
}

func (x *reader) Close() error {
	x.mu.Lock()
	was := x.closed
	x.closed = true
	x.mu.Unlock()
	if !was {
		x.b.unref()
	}
	return nil
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

// release is the handler's end with the body: its buffer goes back to the
// pool, or, once handed off, when the last reader is closed too. The body
// must not be used after.
func (b *body) release() {
	if b.out != nil {
		b.unref()
	}
	put(b.buf)
	b.buf = nil
}

func (b *body) unref() {
	if b.refs.Add(-1) == 0 {
		put(b.sent)
	}
}

func put(buf *[]byte) {
	if buf != nil && cap(*buf) <= maxPooled {
		*buf = (*buf)[:0]
		buffers.Put(buf)
	}
}

// handOff makes the request's body the normalised event when ev is not
// nil, the bytes as received otherwise. head is ev's CloudEvent head when
// the caller built it already; nil builds it here.
func (b *body) handOff(r *http.Request, ev *verify.Event, head []byte) {
	// the body was read whole: it is no longer sent as it arrives
	delete(r.Header, "Incremental")
	buf := *b.buf
	if ev == nil {
		b.send(r, buf[headroom:], true)
		return
	}
	r.Header["Content-Type"] = cloudEventType
	// these describe the body as received, not the event
	for _, name := range [...]string{"Content-Encoding", "Content-Md5", "Digest", "Content-Digest", "Repr-Digest"} {
		delete(r.Header, name)
	}
	var scratch [1024]byte
	if head == nil {
		head = ev.AppendCloudEventHead(scratch[:0])
	}
	payload := ev.Payload()          // a slice of the buffer, after the headroom
	start := cap(buf) - cap(payload) // payload's offset in buf
	end := start + len(payload)
	if len(head) <= start && end+tailroom <= cap(buf) {
		copy(buf[start-len(head):], head)
		copy(buf[end:end+tailroom], verify.CloudEventTail)
		b.send(r, buf[start-len(head):end+tailroom], true)
		return
	}
	// a head longer than the room before the payload (a very long text
	// field): a copy
	out := make([]byte, 0, len(head)+len(payload)+tailroom)
	b.send(r, append(append(append(out, head...), payload...), verify.CloudEventTail...), false)
}

// send makes out the request body; inBuffer says that it is held in b's
// buffer, which then stays out of the pool until every reader is done.
func (b *body) send(r *http.Request, out []byte, inBuffer bool) {
	b.out = out
	if inBuffer {
		b.sent, b.buf = b.buf, nil
	}
	b.refs.Store(2) // the handler's, and the request's Body
	b.body.b = b
	b.body.r.Reset(out)
	r.Body = &b.body
	r.GetBody = b.reopen
	setLength(r, int64(len(out)))
}

// reopen is the request's GetBody: a new reader of what is forwarded.
func (b *body) reopen() (io.ReadCloser, error) {
	for {
		n := b.refs.Load()
		if n == 0 { // everyone is done: the buffer may be another request's
			return nil, http.ErrBodyReadAfterClose
		}
		if b.refs.CompareAndSwap(n, n+1) {
			break
		}
	}
	x := &reader{b: b}
	x.r.Reset(b.out)
	return x, nil
}

func setLength(r *http.Request, n int64) {
	r.ContentLength = n
	r.TransferEncoding = nil
	r.Trailer = nil // the body was read whole: trailers would only carry what a client chose
	r.Header.Set("Content-Length", strconv.FormatInt(n, 10))
}
