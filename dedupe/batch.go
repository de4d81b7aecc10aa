package dedupe

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// batcher sends concurrent SET commands to Redis as pipelines: one
// executor takes one waiting command and every other command waiting at
// that moment, and sends them in one write, reading the replies in one
// read. While a pipeline is out, the commands that arrive meanwhile wait,
// and go together in the next: under concurrency that divides the system
// calls per command by the batch size, which is what a Redis round trip
// mostly costs the gateway. (With four executors, one was nearly always
// idle and took each command alone: 4 commands a pipeline against 13 with
// one, at 32 concurrent requests on one core.)
// A command sent while no other is in flight goes straight to Redis from
// its caller: with nothing to batch, a handoff would only add latency.
//
// Each command keeps its own context: a caller whose deadline passes while
// its command waits or runs gets the context's error at once, and the
// others are not affected: a pipeline runs until the latest deadline of
// the callers still waiting for it. A claim whose caller has left is
// never sent if it was still queued, and is deleted again (while it still
// holds its token) if it was sent and may have been written: the caller
// was told it failed, so it must not stand. A commit is sent whether or
// not its caller still waits: the upstream has the event, and "done" is
// true whenever it lands.
type batcher struct {
	client   redis.UniversalClient
	timeout  time.Duration           // budget of a command whose caller has no deadline
	undo     func(key, value string) // deletes key while it still holds value
	queue    chan *setCall
	stop     chan struct{} // closed by close: executors drain the queue and leave
	exited   chan struct{} // closed once they have
	once     sync.Once
	running  sync.WaitGroup
	inflight atomic.Int32 // commands being sent, direct or in a pipeline
}

const (
	executors = 1
	maxBatch  = 128
)

// States of a queued command. The caller moves it from queued or sending
// to gone when it stops waiting; an executor moves it from queued to
// sending when it takes it, and from sending to finished when the reply is
// in. Whoever loses a move knows what the other did.
const (
	queued int32 = iota
	sending
	finished
	gone
)

type setCall struct {
	ctx      context.Context
	deadline time.Time // the store's timeout, or ctx's deadline if sooner
	key      string
	value    string
	args     redis.SetArgs
	claim    bool // not sent once its caller has left; undone if it left while it was sent
	state    atomic.Int32
	done     chan struct{}
	prev     string
	err      error
}

func newBatcher(client redis.UniversalClient, timeout time.Duration, undo func(key, value string)) *batcher {
	b := &batcher{client: client, timeout: timeout, undo: undo,
		queue: make(chan *setCall, 1024), stop: make(chan struct{}), exited: make(chan struct{})}
	b.running.Add(executors)
	for i := 0; i < executors; i++ {
		go b.run()
	}
	return b
}

// set runs SET key value <args> and returns its reply (redis.Nil for
// none), by deadline or ctx's own, whichever is first. claim marks a
// claim (see batcher).
func (b *batcher) set(ctx context.Context, deadline time.Time, key, value string, args redis.SetArgs, claim bool) (string, error) {
	select {
	case <-b.stop: // closed: a late caller (a request outliving a reload) goes direct
		return b.direct(ctx, deadline, key, value, args, claim)
	default:
	}
	if b.inflight.Add(1) == 1 { // nothing else in flight: no batch to join
		defer b.inflight.Add(-1)
		return b.direct(ctx, deadline, key, value, args, claim)
	}
	b.inflight.Add(-1)
	// a timer for the deadline, where ctx's own does not come first: a
	// context.WithDeadline would cost a second timer, and registering with
	// the parent context, on every command
	var expired <-chan time.Time
	if d, ok := ctx.Deadline(); ok && !deadline.Before(d) {
		deadline = d
	} else {
		t := getTimer(time.Until(deadline))
		defer putTimer(t)
		expired = t.C
	}
	c := calls.Get().(*setCall)
	c.ctx, c.deadline, c.key, c.value, c.args, c.claim = ctx, deadline, key, value, args, claim
	c.state.Store(queued)
	select {
	case b.queue <- c:
	case <-ctx.Done():
		c.recycle() // never queued
		return "", ctx.Err()
	case <-expired:
		c.recycle()
		return "", context.DeadlineExceeded
	case <-b.stop:
		c.recycle()
		return b.direct(ctx, deadline, key, value, args, claim)
	}
	var err error
	select {
	case <-c.done:
		return c.reply()
	case <-ctx.Done():
		err = ctx.Err()
	case <-expired:
		err = context.DeadlineExceeded
	case <-b.exited: // closed after it was queued: no executor will take it
		if c.state.CompareAndSwap(queued, gone) {
			return b.direct(ctx, deadline, key, value, args, claim)
		}
	}
	if err != nil && (c.state.CompareAndSwap(queued, gone) || c.state.CompareAndSwap(sending, gone)) {
		return "", err // the executor skips it, or undoes it; c stays its
	}
	<-c.done // finished as we left: the reply is in
	return c.reply()
}

// reply returns a finished command's reply and puts the command back in
// the pool: the executor is done with it once it has signalled done. A
// command whose caller left is never put back: an executor, or the queue
// of a closed batcher, may still hold it.
func (c *setCall) reply() (string, error) {
	prev, err := c.prev, c.err
	c.recycle()
	return prev, err
}

// recycle puts a call that nothing else holds back in the pool, empty.
func (c *setCall) recycle() {
	*c = setCall{done: c.done}
	calls.Put(c)
}

var calls = sync.Pool{New: func() any { return &setCall{done: make(chan struct{}, 1)} }}

// timers are the deadlines of queued commands, reset for reuse. Only a
// timer stopped before it fired goes back: one that fired may, in a binary
// built on a go line before 1.23 or run with GODEBUG=asynctimerchan=1,
// hold (or be about to send) its value, which its next user would take
// for its own deadline.
var timers sync.Pool

func getTimer(d time.Duration) *time.Timer {
	if t, ok := timers.Get().(*time.Timer); ok {
		t.Reset(d)
		return t
	}
	return time.NewTimer(d)
}

func putTimer(t *time.Timer) {
	if t.Stop() {
		timers.Put(t)
	}
}

// direct sends one command on the caller's context, bounded by deadline.
// A claim that fails may still have been written (a reply lost): it is
// undone.
func (b *batcher) direct(ctx context.Context, deadline time.Time, key, value string, args redis.SetArgs, claim bool) (string, error) {
	if d, ok := ctx.Deadline(); !ok || deadline.Before(d) {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, deadline)
		defer cancel()
	}
	prev, err := b.client.SetArgs(ctx, key, value, args).Result()
	if claim && err != nil && err != redis.Nil {
		b.undo(key, value)
	}
	return prev, err
}

func (b *batcher) run() {
	defer b.running.Done()
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

// exec sends a batch: the claims whose callers have left are dropped, and
// the pipeline lives until the latest deadline of the callers still
// waiting (a command whose caller has none, or has left, gets the
// batcher's timeout).
func (b *batcher) exec(batch []*setCall) {
	now := time.Now()
	var deadline time.Time
	n := 0
	for _, c := range batch {
		if !c.state.CompareAndSwap(queued, sending) && c.claim {
			continue // its caller left before it was sent
		}
		d := c.deadline
		if !d.After(now) || c.ctx.Err() != nil { // its caller left: a commit still gets its budget
			d = now.Add(b.timeout)
		}
		if d.After(deadline) {
			deadline = d
		}
		batch[n] = c
		n++
	}
	batch = batch[:n]
	if n == 0 {
		return
	}
	b.inflight.Add(int32(n))
	defer b.inflight.Add(-int32(n))
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	if n == 1 {
		c := batch[0]
		c.prev, c.err = b.client.SetArgs(ctx, c.key, c.value, c.args).Result()
		b.finish(c)
		return
	}
	cmds := make([]*redis.StatusCmd, n)
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
		b.finish(c)
	}
}

// finish hands the reply to the caller or, if the caller has left, undoes
// a claim that was (or may have been) written.
func (b *batcher) finish(c *setCall) {
	if c.state.CompareAndSwap(sending, finished) {
		if c.claim && c.err != nil && c.err != redis.Nil {
			// the caller is told the claim failed, but it may have been
			// written (a reply lost): it must not stand, as in direct.
			// Before the send: after it, c may be another caller's.
			b.undo(c.key, c.value)
		}
		c.done <- struct{}{}
		return
	}
	if c.claim && c.err != nil { // redis.Nil: written; another error: maybe written
		b.undo(c.key, c.value)
	}
}

// close stops the executors and waits for them to serve what was queued
// and leave. Later commands go straight to Redis.
func (b *batcher) close() {
	b.once.Do(func() {
		close(b.stop)
		b.running.Wait()
		close(b.exited)
	})
}
