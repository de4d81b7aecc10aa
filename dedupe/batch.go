package dedupe

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// batcher sends concurrent SET commands to Redis as pipelines: each of a
// few executors takes one waiting command and every other command waiting
// at that moment, and sends them in one write, reading the replies in one
// read. Under concurrency that divides the system calls per command by the
// batch size, which is what a Redis round trip mostly costs the gateway.
// A command sent while no other is in flight goes straight to Redis from
// its caller: with nothing to batch, a handoff would only add latency.
//
// Each command keeps its own context: a caller whose deadline passes while
// its command waits or runs gets the context's error at once. A pipeline
// runs under the earliest deadline of its commands, so that no command runs
// on after its caller stopped waiting (a command already sent may still
// take effect, as with any timed-out Redis call).
type batcher struct {
	client   redis.UniversalClient
	queue    chan *setCall
	stop     chan struct{}
	once     sync.Once
	inflight atomic.Int32 // commands being sent, direct or in a pipeline
}

const (
	executors = 4
	maxBatch  = 128
)

type setCall struct {
	ctx   context.Context
	key   string
	value string
	args  redis.SetArgs
	done  chan struct{}
	prev  string
	err   error
}

func newBatcher(client redis.UniversalClient) *batcher {
	b := &batcher{client: client, queue: make(chan *setCall, 1024), stop: make(chan struct{})}
	for i := 0; i < executors; i++ {
		go b.run()
	}
	return b
}

// set runs SET key value <args> and returns its reply (redis.Nil for none).
func (b *batcher) set(ctx context.Context, key, value string, args redis.SetArgs) (string, error) {
	select {
	case <-b.stop: // closed: a late caller (a request outliving a reload) goes direct
		return b.client.SetArgs(ctx, key, value, args).Result()
	default:
	}
	if b.inflight.Add(1) == 1 { // nothing else in flight: no batch to join
		defer b.inflight.Add(-1)
		return b.client.SetArgs(ctx, key, value, args).Result()
	}
	b.inflight.Add(-1)
	c := &setCall{ctx: ctx, key: key, value: value, args: args, done: make(chan struct{}, 1)}
	select {
	case b.queue <- c:
	case <-ctx.Done():
		return "", ctx.Err()
	case <-b.stop:
		return b.client.SetArgs(ctx, key, value, args).Result()
	}
	select {
	case <-c.done:
		return c.prev, c.err
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

func (b *batcher) run() {
	batch := make([]*setCall, 0, maxBatch)
	for {
		select {
		case c := <-b.queue:
			batch = append(batch[:0], c)
		case <-b.stop:
			// serve what was queued before the stop, then leave
			for {
				select {
				case c := <-b.queue:
					b.exec(append(batch[:0], c))
				default:
					return
				}
			}
		}
	more:
		for len(batch) < maxBatch {
			select {
			case c := <-b.queue:
				batch = append(batch, c)
			default:
				break more
			}
		}
		b.exec(batch)
	}
}

func (b *batcher) exec(batch []*setCall) {
	b.inflight.Add(int32(len(batch)))
	defer b.inflight.Add(-int32(len(batch)))
	// the pipeline lives no longer than its least patient caller
	deadline := time.Now().Add(DefaultTimeout)
	for _, c := range batch {
		if d, ok := c.ctx.Deadline(); ok && d.Before(deadline) {
			deadline = d
		}
	}
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	if len(batch) == 1 {
		c := batch[0]
		c.prev, c.err = b.client.SetArgs(ctx, c.key, c.value, c.args).Result()
		c.done <- struct{}{}
		return
	}
	cmds := make([]*redis.StatusCmd, len(batch))
	_, err := b.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, c := range batch {
			cmds[i] = p.SetArgs(ctx, c.key, c.value, c.args)
		}
		return nil
	})
	for i, c := range batch {
		c.prev, c.err = cmds[i].Result()
		if c.err == nil && err != nil && err != redis.Nil {
			c.err = err
		}
		c.done <- struct{}{}
	}
}

func (b *batcher) close() { b.once.Do(func() { close(b.stop) }) }
