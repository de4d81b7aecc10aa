package caddymodule

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
)

// slowBody sends its first bytes, then holds the request open until
// release is closed, as a client that sent headers and little else.
type slowBody struct {
	first   []byte
	waiting chan<- struct{} // told once the reader waits for more
	release <-chan struct{}
	told    bool
}

func (s *slowBody) Read(p []byte) (int, error) {
	if len(s.first) > 0 {
		n := copy(p, s.first)
		s.first = s.first[n:]
		return n, nil
	}
	if !s.told {
		s.told = true
		s.waiting <- struct{}{}
	}
	<-s.release
	return 0, io.EOF
}

// TestBodyMemoryFollowsWhatArrived: requests that declare 1 MiB and send
// 100 bytes hold about what they sent, not what they declared, while
// the handler reads them.
func TestBodyMemoryFollowsWhatArrived(t *testing.T) {
	const conns, declared = 64, 1 << 20
	waiting := make(chan struct{}, conns)
	release := make(chan struct{})
	var before, during runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	var wg sync.WaitGroup
	for range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := httptest.NewRequest(http.MethodPost, "/", nil)
			r.Body = io.NopCloser(&slowBody{first: bytes.Repeat([]byte("x"), 100), waiting: waiting, release: release})
			r.ContentLength = declared
			if b, err := readBody(httptest.NewRecorder(), r, 2*declared); err == nil {
				b.release()
			}
		}()
	}
	for range conns {
		<-waiting
	}
	runtime.GC()
	runtime.ReadMemStats(&during)
	close(release)
	wg.Wait()
	if grew := int64(during.HeapAlloc) - int64(before.HeapAlloc); grew > 8<<20 {
		t.Errorf("%d requests that sent 100 bytes each hold %d MiB", conns, grew>>20)
	}
}

// TestReadBody: bodies of every size, with and without a declared
// length, read back whole, with room for the CloudEvent around them.
func TestReadBody(t *testing.T) {
	for _, n := range []int{0, 1, 100, pooledSize - headroom, pooledSize, 3 * pooledSize, 1 << 20} {
		for _, declared := range []bool{true, false} {
			want := strings.Repeat("a", n)
			r := httptest.NewRequest(http.MethodPost, "/", io.MultiReader(strings.NewReader(want)))
			r.ContentLength = -1
			if declared {
				r.ContentLength = int64(n)
			}
			b, err := readBody(httptest.NewRecorder(), r, 1<<20)
			if err != nil {
				t.Fatalf("%d bytes (declared %v): %v", n, declared, err)
			}
			if string(b.Bytes()) != want {
				t.Errorf("%d bytes (declared %v): read back %d bytes", n, declared, len(b.Bytes()))
			}
			if declared && cap(*b.buf)-len(*b.buf) < tailroom {
				t.Errorf("%d bytes: no room for the CloudEvent's tail", n)
			}
			b.release()
		}
	}
	r := httptest.NewRequest(http.MethodPost, "/", io.MultiReader(strings.NewReader(strings.Repeat("a", 1025))))
	r.ContentLength = -1
	if _, err := readBody(httptest.NewRecorder(), r, 1024); err == nil {
		t.Error("a body over the limit with no declared length was read")
	}
}
