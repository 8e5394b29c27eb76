package afxdp

import (
	"errors"

	"golang.org/x/sys/unix"
)

// xdpMaxTXSKBBudget is the XDP_MAX_TX_SKB_BUDGET socket option (Linux 6.17,
// include/uapi/linux/if_xdp.h): how many TX descriptors one sendto handles in
// copy mode (default 32, allowed 32..TX ring size).
const xdpMaxTXSKBBudget = 9

// TX budget settings of Config.TXBudget.
const (
	// TXBudgetKernel keeps the kernel's 32 frames per sendto (the default: with
	// a larger budget TestL4RealSurge lost pings to the node during a surge, one
	// long sendto keeping the CPU from the receive path).
	TXBudgetKernel = 0
	// TXBudgetRing lets one sendto send the whole TX ring.
	TXBudgetRing = -1
)

// setTXBudget raises the copy-mode sendto budget of socket fd to the TX ring
// size (budget TXBudgetRing) or to budget, so that Transmit sends a batch
// with one sendto instead of one per 32 frames. It says whether the kernel
// took it; an older kernel (ENOPROTOOPT) or zero-copy mode keeps 32, which
// costs syscalls, nothing else.
func setTXBudget(fd, budget int, ringSize int) (bool, error) {
	switch {
	case budget == TXBudgetKernel:
		return false, nil
	case budget == TXBudgetRing || budget > ringSize:
		budget = ringSize
	}
	err := unix.SetsockoptInt(fd, unix.SOL_XDP, xdpMaxTXSKBBudget, budget)
	if errors.Is(err, unix.ENOPROTOOPT) || errors.Is(err, unix.EINVAL) {
		return false, nil
	}
	return err == nil, err
}
