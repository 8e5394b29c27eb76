package pipeline

import (
	"context"
	"fmt"
	"runtime"
	"time"

	"github.com/medialb/medialb/afxdp"
	"github.com/medialb/medialb/tables"
)

// Desc describes one frame in a socket's UMEM (an alias of [afxdp.Desc]).
type Desc = afxdp.Desc

// Port is the part of an AF_XDP socket a [Worker] uses. *[afxdp.Socket] implements it;
// tests use an in-memory fake. A Port is used by one worker only.
type Port interface {
	// Receive fills descs with received frames and returns how many; it never blocks.
	Receive(descs []Desc) int
	// Frame returns the bytes of a received frame; they may be modified in place.
	Frame(d Desc) []byte
	// Transmit queues descs for transmission and returns how many it accepted (a
	// prefix of descs); the others stay the caller's.
	Transmit(descs []Desc) int
	// Release gives frames that will not be transmitted back to the free pool.
	Release(descs []Desc)
	// Wait blocks until frames may have arrived or timeout has passed.
	Wait(timeout time.Duration) error
}

// Defaults for [WorkerOptions] fields left zero.
const (
	DefaultBatchSize = 64
	DefaultIdleWait  = 50 * time.Millisecond
)

// WorkerOptions tunes a [Worker]. The zero value gives the defaults.
type WorkerOptions struct {
	// BatchSize is the most frames handled per receive; 0 means DefaultBatchSize.
	BatchSize int
	// IdleWait is how long the worker blocks in Port.Wait when the RX ring is empty;
	// it also bounds how long Run takes to notice that its context is done.
	// 0 means DefaultIdleWait.
	IdleWait time.Duration
	// Clock returns the coarse clock in seconds that persistence uses
	// ([tables.Service.Pick]); it is called once per batch. All users of the same
	// tables (other workers, the L7 proxy, the control plane) must share it.
	// nil means [Now].
	Clock func() uint32
}

var epoch = time.Now()

// Now is the default persistence clock: whole seconds since the process started,
// read from the monotonic clock.
func Now() uint32 { return uint32(time.Since(epoch) / time.Second) }

// Worker is the poll-mode loop of one AF_XDP socket. Create it with [NewWorker] and
// start it with [Worker.Run]; Counters may be called from any goroutine.
type Worker struct {
	port     Port
	holder   *tables.Holder
	localMAC [6]byte
	idleWait time.Duration
	clock    func() uint32
	descs    []Desc

	c counters
}

// NewWorker returns a worker that forwards frames from port using the snapshot in
// holder, with localMAC as the source MAC of what it sends (and the destination MAC it
// accepts).
func NewWorker(port Port, holder *tables.Holder, localMAC [6]byte, opts WorkerOptions) *Worker {
	if opts.BatchSize <= 0 {
		opts.BatchSize = DefaultBatchSize
	}
	if opts.IdleWait <= 0 {
		opts.IdleWait = DefaultIdleWait
	}
	if opts.Clock == nil {
		opts.Clock = Now
	}
	return &Worker{
		port:     port,
		holder:   holder,
		localMAC: localMAC,
		idleWait: opts.IdleWait,
		clock:    opts.Clock,
		descs:    make([]Desc, opts.BatchSize),
	}
}

// Run polls the port until ctx is done, on an OS thread of its own (locked for the
// duration): receive a batch, process it, transmit the forwarded frames, release the
// others; wait on the port when there is nothing to receive. It returns nil when ctx is
// done, or the error of Port.Wait. Run must not be called twice at the same time.
func (w *Worker) Run(ctx context.Context) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	for ctx.Err() == nil {
		if w.poll() {
			continue
		}
		if err := w.port.Wait(w.idleWait); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("wait for frames: %w (socket closed?)", err)
		}
	}
	return nil
}

// Counters returns a copy of the worker's counters. It is safe to call while Run runs.
func (w *Worker) Counters() Counters { return w.c.load() }

// poll handles one batch. It reports whether there was anything to receive.
func (w *Worker) poll() bool {
	n := w.port.Receive(w.descs)
	if n <= 0 {
		return false
	}
	descs := w.descs[:n]
	var bc batchCounts
	ntx := w.processBatch(w.holder.Load(), w.clock(), descs, &bc)
	sent := 0
	if ntx > 0 {
		sent = w.port.Transmit(descs[:ntx])
		if sent < ntx {
			bc[Forwarded] -= uint32(ntx - sent)
			bc[TXFull] += uint32(ntx - sent)
		}
	}
	if sent < n {
		w.port.Release(descs[sent:])
	}
	w.c.add(&bc)
	return true
}

// processBatch runs Process on every frame of descs and reorders descs so that the
// frames to transmit come first; it returns their number and counts the batch in bc.
func (w *Worker) processBatch(snap *tables.Snapshot, now uint32, descs []Desc, bc *batchCounts) int {
	ntx := 0
	for i, d := range descs {
		r := Process(snap, w.localMAC, now, w.port.Frame(d))
		bc[r]++
		if r == Forwarded {
			descs[i], descs[ntx] = descs[ntx], d
			ntx++
		}
	}
	return ntx
}
