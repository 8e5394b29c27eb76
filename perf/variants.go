package perf

import "github.com/medialb/medialb/afxdp"

// dpOptions are the afxdp.Config settings a medialb forwarder varies.
type dpOptions struct {
	BusyPoll bool // afxdp.Config.BusyPoll
	TXBudget int  // afxdp.Config.TXBudget
}

// Forwarders that undo one step of the pipeline's TX path, to measure the step
// against the default in the same run (--forwarders medialb,medialb_txring,...).
const (
	// FwdMedialbTXRing is medialb with the TX ring size as the copy-mode sendto
	// budget (afxdp.TXBudgetRing) instead of the kernel's 32.
	FwdMedialbTXRing = "medialb_txring"
	// FwdMedialbFastpathTXRing is medialb+fastpath with the ring-sized budget.
	FwdMedialbFastpathTXRing = "medialb+fastpath_txring"
	// FwdMedialbBusyPollFastpath is medialb+fastpath with busy polling.
	FwdMedialbBusyPollFastpath = "medialb+fastpath_busypoll"
)

// variant returns the options of a variant forwarder and whether it has the
// fast path on.
func variant(name string) (o dpOptions, fast, ok bool) {
	switch name {
	case FwdMedialbTXRing:
		return dpOptions{TXBudget: afxdp.TXBudgetRing}, false, true
	case FwdMedialbFastpathTXRing:
		return dpOptions{TXBudget: afxdp.TXBudgetRing}, true, true
	case FwdMedialbBusyPollFastpath:
		return dpOptions{BusyPoll: true}, true, true
	}
	return dpOptions{}, false, false
}
