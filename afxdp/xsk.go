package afxdp

import (
	"errors"
	"fmt"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"
)

// Desc describes one frame in a socket's UMEM: Addr is the offset of the
// frame's first byte in the UMEM, Len its length. Descs are handed out by
// Receive and Alloc and handed back through Transmit or Release.
type Desc struct {
	Addr uint64
	Len  uint32
}

// Stats are a socket's counters. Frame counters are cumulative since Open.
type Stats struct {
	RxFrames    uint64 // frames returned by Receive
	TxSubmitted uint64 // frames accepted by Transmit (put on the TX ring)
	TxCompleted uint64 // frames the kernel reported sent (completion ring)
	Released    uint64 // frames returned unsent through Release

	// From the kernel (getsockopt XDP_STATISTICS).
	RxDropped     uint64 // dropped by the kernel (e.g. RX ring full)
	RxInvalid     uint64 // invalid descriptors on the fill ring
	TxInvalid     uint64 // invalid descriptors on the TX ring
	RxRingFull    uint64 // RX ring full events
	FillRingEmpty uint64 // times the kernel found the fill ring empty
	TxRingEmpty   uint64 // times the kernel found the TX ring empty

	NoFreeFrames uint64 // refills that found the fill ring empty and no free frame to put on it
	TxKicks      uint64 // sendto calls
	TxEAGAIN     uint64 // sendto answers EAGAIN/EBUSY/ENOBUFS (copy mode: 32 frames per call)
	TxErrors     uint64 // other sendto errors (link down, ...)
	RxWakeups    uint64 // recvfrom calls to wake the driver (need_wakeup, busy poll)
	FreeFrames   uint64 // frames in the free pool at the last Receive/Wait/Transmit
}

// ring is one of the four AF_XDP rings, mapped from the socket. The producer
// and consumer indexes live in memory shared with the kernel, so they are
// only read and written with atomics (the kernel pairs them with
// smp_load_acquire/smp_store_release). Each ring has exactly one producer and
// one consumer; the side we own is cached in prod or cons.
type ring struct {
	mem      []byte  // the mapping, for munmap
	producer *uint32 // in mem
	consumer *uint32 // in mem
	flags    *uint32 // in mem: XDP_RING_NEED_WAKEUP
	mask     uint32
	size     uint32
	prod     uint32 // our copy of the index we own (producer rings)
	cons     uint32 // our copy of the index we own (consumer rings)
}

// Socket is one AF_XDP socket bound to one RX queue, with its own UMEM. It is
// meant to be driven by a single goroutine (poll mode): its methods take no
// lock and allocate nothing, and are not safe for concurrent use, except
// Stats and QueueID, which any goroutine may call.
//
// Every frame of the UMEM is in exactly one place: the free pool, the fill
// ring, the RX ring, the caller (after Receive or Alloc), or the TX ring and
// then the completion ring. The free pool is a stack owned by the socket.
type Socket struct {
	fd        int
	queue     int
	ifindex   int
	zeroCopy  bool
	busyPoll  bool
	txBudget  bool // the kernel took a copy-mode sendto budget above 32 (txbudget.go)
	frameSize uint64
	frameMask uint64 // ^(frameSize-1): frame base of an address
	umem      []byte
	fill      ring
	comp      ring
	rx        ring
	tx        ring
	fillDescs []uint64       // in fill.mem
	compDescs []uint64       // in comp.mem
	rxDescs   []unix.XDPDesc // in rx.mem
	txDescs   []unix.XDPDesc // in tx.mem
	free      []uint64       // free-frame stack, cap = number of frames
	pfd       [1]unix.PollFd
	log       zerolog.Logger

	rxFrames, txSubmitted, txCompleted, released   atomic.Uint64
	noFree, txKicks, txEAGAIN, txErrors, rxWakeups atomic.Uint64
	freeFrames                                     atomic.Uint64
}

// socketConfig is what newSocket needs; Open derives it from Config.
type socketConfig struct {
	ifindex   int
	queue     int
	numFrames int
	frameSize int
	ringSize  int
	bindFlags uint16 // XDP_COPY or XDP_ZEROCOPY (XDP_USE_NEED_WAKEUP is always added)
	busyPoll  bool
	batch     int
	txBudget  int // TXBudgetRing, TXBudgetKernel or frames per sendto (txbudget.go)
	log       zerolog.Logger
}

// newSocket creates, maps and binds one AF_XDP socket. The rings are mapped
// before bind, as the kernel requires for the queue to be released again on
// close; on any error everything done so far is undone.
func newSocket(c socketConfig) (*Socket, error) {
	fd, err := unix.Socket(unix.AF_XDP, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("create AF_XDP socket: %w (kernel without CONFIG_XDP_SOCKETS?)", err)
	}
	s := &Socket{
		fd:        fd,
		queue:     c.queue,
		ifindex:   c.ifindex,
		busyPoll:  c.busyPoll,
		frameSize: uint64(c.frameSize),
		frameMask: ^uint64(c.frameSize - 1),
		log:       c.log,
	}
	if err := s.setup(c); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func (s *Socket) setup(c socketConfig) error {
	var err error
	s.umem, err = unix.Mmap(-1, 0, c.numFrames*c.frameSize, unix.PROT_READ|unix.PROT_WRITE,
		unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_POPULATE)
	if err != nil {
		return fmt.Errorf("map UMEM of %d frames: %w", c.numFrames, err)
	}
	reg := unix.XDPUmemReg{
		// unsafe: the kernel needs the UMEM's virtual address; the mapping is
		// not Go heap memory and stays put until Close unmaps it.
		Addr: uint64(uintptr(unsafe.Pointer(&s.umem[0]))),
		Len:  uint64(len(s.umem)),
		Size: uint32(c.frameSize),
	}
	// unsafe: setsockopt with a struct argument; reg lives across the call.
	if _, _, e := unix.Syscall6(unix.SYS_SETSOCKOPT, uintptr(s.fd), unix.SOL_XDP, unix.XDP_UMEM_REG,
		uintptr(unsafe.Pointer(&reg)), unsafe.Sizeof(reg), 0); e != 0 {
		return fmt.Errorf("register UMEM: %w (RLIMIT_MEMLOCK too low?)", e)
	}
	for _, o := range []struct {
		opt  int
		name string
	}{
		{unix.XDP_UMEM_FILL_RING, "fill"},
		{unix.XDP_UMEM_COMPLETION_RING, "completion"},
		{unix.XDP_RX_RING, "RX"},
		{unix.XDP_TX_RING, "TX"},
	} {
		if err := unix.SetsockoptInt(s.fd, unix.SOL_XDP, o.opt, c.ringSize); err != nil {
			return fmt.Errorf("size %s ring to %d: %w", o.name, c.ringSize, err)
		}
	}
	var off unix.XDPMmapOffsets
	optlen := uint32(unsafe.Sizeof(off))
	// unsafe: getsockopt with a struct result; off and optlen live across the call.
	if _, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(s.fd), unix.SOL_XDP, unix.XDP_MMAP_OFFSETS,
		uintptr(unsafe.Pointer(&off)), uintptr(unsafe.Pointer(&optlen)), 0); e != 0 {
		return fmt.Errorf("get ring offsets: %w", e)
	}
	n := uint32(c.ringSize)
	if err := s.fill.mmap(s.fd, unix.XDP_UMEM_PGOFF_FILL_RING, off.Fr, n, 8); err != nil {
		return fmt.Errorf("map fill ring: %w", err)
	}
	if err := s.comp.mmap(s.fd, unix.XDP_UMEM_PGOFF_COMPLETION_RING, off.Cr, n, 8); err != nil {
		return fmt.Errorf("map completion ring: %w", err)
	}
	if err := s.rx.mmap(s.fd, unix.XDP_PGOFF_RX_RING, off.Rx, n, uint64(unsafe.Sizeof(unix.XDPDesc{}))); err != nil {
		return fmt.Errorf("map RX ring: %w", err)
	}
	if err := s.tx.mmap(s.fd, unix.XDP_PGOFF_TX_RING, off.Tx, n, uint64(unsafe.Sizeof(unix.XDPDesc{}))); err != nil {
		return fmt.Errorf("map TX ring: %w", err)
	}
	// unsafe: the descriptor arrays are inside the ring mappings at the offsets
	// the kernel gave; each holds exactly ringSize entries (mmap sized them).
	s.fillDescs = unsafe.Slice((*uint64)(unsafe.Pointer(&s.fill.mem[off.Fr.Desc])), n)
	s.compDescs = unsafe.Slice((*uint64)(unsafe.Pointer(&s.comp.mem[off.Cr.Desc])), n)
	s.rxDescs = unsafe.Slice((*unix.XDPDesc)(unsafe.Pointer(&s.rx.mem[off.Rx.Desc])), n)
	s.txDescs = unsafe.Slice((*unix.XDPDesc)(unsafe.Pointer(&s.tx.mem[off.Tx.Desc])), n)

	sa := &unix.SockaddrXDP{
		Flags:   c.bindFlags | unix.XDP_USE_NEED_WAKEUP,
		Ifindex: uint32(c.ifindex),
		QueueID: uint32(c.queue),
	}
	if err := unix.Bind(s.fd, sa); err != nil {
		return &bindError{queue: c.queue, flags: c.bindFlags, err: err}
	}
	opts, err := unix.GetsockoptInt(s.fd, unix.SOL_XDP, unix.XDP_OPTIONS)
	if err != nil {
		return fmt.Errorf("get XDP socket options: %w", err)
	}
	s.zeroCopy = opts&unix.XDP_OPTIONS_ZEROCOPY != 0
	if !s.zeroCopy {
		if s.txBudget, err = setTXBudget(s.fd, c.txBudget, int(n)); err != nil {
			s.log.Warn().Err(err).Int("queue", c.queue).Msg("AF_XDP copy mode: cannot raise the frames per sendto (XDP_MAX_TX_SKB_BUDGET); 32 it is")
		}
	}

	if c.busyPoll {
		for _, o := range []struct {
			opt, val int
			name     string
		}{
			{unix.SO_PREFER_BUSY_POLL, 1, "SO_PREFER_BUSY_POLL"},
			{unix.SO_BUSY_POLL, 20, "SO_BUSY_POLL"},
			{unix.SO_BUSY_POLL_BUDGET, c.batch, "SO_BUSY_POLL_BUDGET"},
		} {
			if err := unix.SetsockoptInt(s.fd, unix.SOL_SOCKET, o.opt, o.val); err != nil {
				s.log.Warn().Err(err).Int("queue", c.queue).Msgf("busy poll: setting %s failed, continuing without it", o.name)
				s.busyPoll = false
				break
			}
		}
	}

	s.free = make([]uint64, 0, c.numFrames)
	for i := c.numFrames - 1; i >= 0; i-- {
		s.free = append(s.free, uint64(i)*s.frameSize)
	}
	s.refill()
	s.pfd[0] = unix.PollFd{Fd: int32(s.fd), Events: unix.POLLIN}
	return nil
}

// bindError is a failed bind; Open looks at it to fall back to copy mode or
// to retry a queue still held by a dying process.
type bindError struct {
	queue int
	flags uint16
	err   error
}

func (e *bindError) Error() string {
	mode := "default"
	switch {
	case e.flags&unix.XDP_ZEROCOPY != 0:
		mode = "zero-copy"
	case e.flags&unix.XDP_COPY != 0:
		mode = "copy"
	}
	hint := ""
	switch {
	case errors.Is(e.err, unix.EBUSY):
		hint = " (queue held by another AF_XDP socket: is another medialb running?)"
	case e.flags&unix.XDP_ZEROCOPY != 0:
		hint = " (the driver refused zero-copy on this queue; virtio-net needs a device with iommu_platform=on; set node.zero_copy: auto to fall back to copy mode)"
	}
	return fmt.Sprintf("bind AF_XDP socket to queue %d in %s mode: %v%s", e.queue, mode, e.err, hint)
}

func (e *bindError) Unwrap() error { return e.err }

func (r *ring) mmap(fd int, pgoff int64, off unix.XDPRingOffset, n uint32, descSize uint64) error {
	mem, err := unix.Mmap(fd, pgoff, int(off.Desc+uint64(n)*descSize),
		unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return err
	}
	r.mem = mem
	// unsafe: producer, consumer and flags are u32 fields the kernel placed at
	// these offsets inside the mapping; the mapping outlives every use.
	r.producer = (*uint32)(unsafe.Pointer(&mem[off.Producer]))
	r.consumer = (*uint32)(unsafe.Pointer(&mem[off.Consumer]))
	r.flags = (*uint32)(unsafe.Pointer(&mem[off.Flags]))
	r.size = n
	r.mask = n - 1
	r.prod = atomic.LoadUint32(r.producer)
	r.cons = atomic.LoadUint32(r.consumer)
	return nil
}

func (r *ring) munmap() error {
	if r.mem == nil {
		return nil
	}
	err := unix.Munmap(r.mem)
	*r = ring{}
	return err
}

func (r *ring) needWakeup() bool {
	return atomic.LoadUint32(r.flags)&unix.XDP_RING_NEED_WAKEUP != 0
}

// QueueID returns the RX queue the socket is bound to.
func (s *Socket) QueueID() int { return s.queue }

// FD returns the socket's file descriptor (for the XSKMAP and for tests).
func (s *Socket) FD() int { return s.fd }

// ZeroCopy reports whether the kernel bound the socket in zero-copy mode.
func (s *Socket) ZeroCopy() bool { return s.zeroCopy }

// Frame returns the bytes of the frame d in the UMEM; writing to them changes
// the frame in place. It does not check d: a Desc must come from this socket.
func (s *Socket) Frame(d Desc) []byte {
	return s.umem[d.Addr : d.Addr+uint64(d.Len) : d.Addr+uint64(d.Len)]
}

// FrameCap returns the frame size: the longest frame Alloc'd Descs can hold.
func (s *Socket) FrameCap() int { return int(s.frameSize) }

// refill moves frames from the free pool to the fill ring.
func (s *Socket) refill() {
	cons := atomic.LoadUint32(s.fill.consumer)
	room := s.fill.size - (s.fill.prod - cons)
	n := uint32(len(s.free))
	if n > room {
		n = room
	}
	if n == 0 {
		if s.fill.prod == cons && room != 0 {
			s.noFree.Add(1)
		}
		return
	}
	top := uint32(len(s.free))
	for i := uint32(0); i < n; i++ {
		s.fillDescs[(s.fill.prod+i)&s.fill.mask] = s.free[top-1-i]
	}
	s.free = s.free[:top-n]
	atomic.StoreUint32(s.fill.producer, s.fill.prod+n)
	s.fill.prod += n
}

// reap moves sent frames from the completion ring to the free pool.
func (s *Socket) reap() {
	prod := atomic.LoadUint32(s.comp.producer)
	n := prod - s.comp.cons
	if n == 0 {
		return
	}
	for i := uint32(0); i < n; i++ {
		s.free = append(s.free, s.compDescs[(s.comp.cons+i)&s.comp.mask]&s.frameMask)
	}
	s.comp.cons = prod
	atomic.StoreUint32(s.comp.consumer, prod)
	s.txCompleted.Add(uint64(n))
}

// Receive fills descs with received frames and returns how many; it never
// blocks. The frames belong to the caller until passed to Transmit or Release.
// It first reaps TX completions and refills the fill ring.
func (s *Socket) Receive(descs []Desc) int {
	s.reap()
	s.refill()
	prod := atomic.LoadUint32(s.rx.producer)
	n := prod - s.rx.cons
	if n == 0 {
		if s.busyPoll || s.fill.needWakeup() {
			s.wakeRx()
		}
		s.freeFrames.Store(uint64(len(s.free)))
		return 0
	}
	if n > uint32(len(descs)) {
		n = uint32(len(descs))
	}
	for i := uint32(0); i < n; i++ {
		d := &s.rxDescs[(s.rx.cons+i)&s.rx.mask]
		descs[i] = Desc{Addr: d.Addr, Len: d.Len}
	}
	s.rx.cons += n
	atomic.StoreUint32(s.rx.consumer, s.rx.cons)
	s.rxFrames.Add(uint64(n))
	s.freeFrames.Store(uint64(len(s.free)))
	return int(n)
}

func (s *Socket) wakeRx() {
	s.rxWakeups.Add(1)
	unix.Syscall6(unix.SYS_RECVFROM, uintptr(s.fd), 0, 0, unix.MSG_DONTWAIT, 0, 0)
}

// Alloc takes up to len(descs) frames from the free pool for the caller to
// build frames in (a generator, tests); each Desc has Len = FrameCap. It
// returns how many it took. The frames go back through Transmit or Release.
func (s *Socket) Alloc(descs []Desc) int {
	s.reap()
	n := len(descs)
	if n > len(s.free) {
		n = len(s.free)
	}
	top := len(s.free)
	for i := 0; i < n; i++ {
		descs[i] = Desc{Addr: s.free[top-1-i], Len: uint32(s.frameSize)}
	}
	s.free = s.free[:top-n]
	return n
}

// Release gives frames that will not be sent back to the free pool; the next
// Receive or Wait puts them on the fill ring.
func (s *Socket) Release(descs []Desc) {
	for _, d := range descs {
		s.free = append(s.free, d.Addr&s.frameMask)
	}
	s.released.Add(uint64(len(descs)))
}

// Transmit puts as many of descs on the TX ring as it has room for and makes
// the kernel send them. It returns how many it accepted: those frames return
// to the free pool when the kernel completes them; frames not accepted
// (descs[n:]) stay the caller's, to retry or Release.
//
// In copy mode the kernel sends at most 32 frames per sendto and answers
// EAGAIN with more left, so Transmit kicks again, reaping completions in
// between, until the TX ring is drained or the kernel stops making progress.
func (s *Socket) Transmit(descs []Desc) int {
	s.reap()
	cons := atomic.LoadUint32(s.tx.consumer)
	room := s.tx.size - (s.tx.prod - cons)
	n := uint32(len(descs))
	if n > room {
		n = room
	}
	for i := uint32(0); i < n; i++ {
		d := &s.txDescs[(s.tx.prod+i)&s.tx.mask]
		d.Addr = descs[i].Addr
		d.Len = descs[i].Len
		d.Options = 0
	}
	if n > 0 {
		s.tx.prod += n
		atomic.StoreUint32(s.tx.producer, s.tx.prod)
		s.txSubmitted.Add(uint64(n))
	}
	s.kick()
	s.freeFrames.Store(uint64(len(s.free)))
	return int(n)
}

// maxStalls is how many sendto calls in a row may leave the TX ring's
// consumer index where it was before kick gives up until the next call.
const maxStalls = 4

// kick makes the kernel consume the TX ring. In zero-copy mode one sendto
// wakes the driver (only when it asked for it); in copy mode the sending
// happens inside sendto, 32 frames at a time, so kick loops.
func (s *Socket) kick() {
	if atomic.LoadUint32(s.tx.consumer) == s.tx.prod {
		return
	}
	if s.zeroCopy && !s.tx.needWakeup() {
		return
	}
	stalls := 0
	for {
		before := atomic.LoadUint32(s.tx.consumer)
		_, _, e := unix.Syscall6(unix.SYS_SENDTO, uintptr(s.fd), 0, 0, unix.MSG_DONTWAIT, 0, 0)
		s.txKicks.Add(1)
		switch e {
		case 0:
		case unix.EINTR:
			continue
		case unix.EAGAIN, unix.EBUSY, unix.ENOBUFS:
			s.txEAGAIN.Add(1)
		default:
			// ENETDOWN, ENXIO (device gone), EINVAL: the frames stay on the
			// ring; the caller sees them in the counters, not as a panic.
			s.txErrors.Add(1)
			return
		}
		s.reap()
		after := atomic.LoadUint32(s.tx.consumer)
		if after == s.tx.prod || s.zeroCopy {
			return
		}
		if after == before {
			if stalls++; stalls >= maxStalls {
				return
			}
		} else {
			stalls = 0
		}
	}
}

// Wait blocks until the RX ring has frames or timeout passes (a timeout is
// not an error). It reaps completions, refills the fill ring and kicks a TX
// ring the kernel has not drained; it polls for POLLIN only, so frames in
// flight never make it spin.
func (s *Socket) Wait(timeout time.Duration) error {
	s.reap()
	s.refill()
	s.kick()
	s.freeFrames.Store(uint64(len(s.free)))
	if atomic.LoadUint32(s.rx.producer) != s.rx.cons {
		return nil
	}
	ms := int(timeout / time.Millisecond)
	if timeout > 0 && ms == 0 {
		ms = 1
	}
	for {
		s.pfd[0].Revents = 0
		_, err := unix.Poll(s.pfd[:], ms)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("poll AF_XDP socket of queue %d: %w", s.queue, err)
		}
		return nil
	}
}

// Stats returns the socket's counters. Any goroutine may call it.
func (s *Socket) Stats() Stats {
	st := Stats{
		RxFrames:     s.rxFrames.Load(),
		TxSubmitted:  s.txSubmitted.Load(),
		TxCompleted:  s.txCompleted.Load(),
		Released:     s.released.Load(),
		NoFreeFrames: s.noFree.Load(),
		TxKicks:      s.txKicks.Load(),
		TxEAGAIN:     s.txEAGAIN.Load(),
		TxErrors:     s.txErrors.Load(),
		RxWakeups:    s.rxWakeups.Load(),
		FreeFrames:   s.freeFrames.Load(),
	}
	var ks unix.XDPStatistics
	optlen := uint32(unsafe.Sizeof(ks))
	// unsafe: getsockopt with a struct result; older kernels fill a prefix.
	if _, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(s.fd), unix.SOL_XDP, unix.XDP_STATISTICS,
		uintptr(unsafe.Pointer(&ks)), uintptr(unsafe.Pointer(&optlen)), 0); e == 0 {
		st.RxDropped = ks.Rx_dropped
		st.RxInvalid = ks.Rx_invalid_descs
		st.TxInvalid = ks.Tx_invalid_descs
		st.RxRingFull = ks.Rx_ring_full
		st.FillRingEmpty = ks.Rx_fill_ring_empty_descs
		st.TxRingEmpty = ks.Tx_ring_empty_descs
	}
	return st
}

// Close unmaps the rings, closes the socket and unmaps the UMEM, in that
// order: a ring mapping left behind keeps the socket, and so the queue,
// claimed. Remove the socket from the XSKMAP first.
func (s *Socket) Close() error {
	var errs []error
	for _, r := range []*ring{&s.fill, &s.comp, &s.rx, &s.tx} {
		if err := r.munmap(); err != nil {
			errs = append(errs, fmt.Errorf("unmap ring: %w", err))
		}
	}
	s.fillDescs, s.compDescs, s.rxDescs, s.txDescs = nil, nil, nil, nil
	if s.fd >= 0 {
		if err := unix.Close(s.fd); err != nil {
			errs = append(errs, fmt.Errorf("close AF_XDP socket: %w", err))
		}
		s.fd = -1
	}
	if s.umem != nil {
		if err := unix.Munmap(s.umem); err != nil {
			errs = append(errs, fmt.Errorf("unmap UMEM: %w", err))
		}
		s.umem = nil
	}
	return errors.Join(errs...)
}
