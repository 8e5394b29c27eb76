package perf

import (
	"context"
	"runtime"
	"syscall"
	"time"

	"github.com/medialb/medialb/afxdp"
)

// sendLoop is the generator's sending loop, on a thread pinned to the configured CPU,
// until d has passed or ctx is done: each round asks limit(queued) how many frames to
// send (at most 64; 0 ends the loop), takes that many from the UMEM, lets build write
// them (setting each Desc's Len) and transmits them. It then waits briefly for the
// last completions and returns what the kernel completed.
func (g *Generator) sendLoop(ctx context.Context, d time.Duration, limit func(queued uint64) int, build func(descs []afxdp.Desc)) (GenResult, error) {
	type out struct {
		r   GenResult
		err error
	}
	done := make(chan out, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		tid := syscall.Gettid()
		if g.cfg.CPU >= 0 {
			if err := pinThread(tid, g.cfg.CPU); err != nil {
				done <- out{err: err}
				return
			}
		}
		cpu0, _ := threadRuntime(tid)
		before := g.sock.Stats()
		descs := make([]afxdp.Desc, 64)
		var queued uint64
		start := time.Now()
		deadline := start.Add(d)
		for i := 0; ; i++ {
			if i&63 == 0 && (ctx.Err() != nil || time.Now().After(deadline)) {
				break
			}
			want := min(limit(queued), len(descs))
			if want <= 0 {
				break
			}
			n := g.sock.Alloc(descs[:want])
			build(descs[:n])
			m := g.sock.Transmit(descs[:n])
			if m < n {
				g.sock.Release(descs[m:n])
			}
			queued += uint64(m)
		}
		elapsed := time.Since(start)
		after := g.complete(before, queued)
		cpu1, _ := threadRuntime(tid)
		done <- out{r: GenResult{
			Sent:     after.TxCompleted - before.TxCompleted,
			Elapsed:  elapsed,
			CPU:      cpu1 - cpu0,
			TxErrors: after.TxErrors - before.TxErrors,
		}}
	}()
	o := <-done
	return o.r, o.err
}
