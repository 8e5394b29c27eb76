package perf

import "github.com/medialb/medialb/afxdp"

// dpOptions are the afxdp.Config settings a medialb forwarder varies.
type dpOptions struct {
	BusyPoll bool // afxdp.Config.BusyPoll
	TXBudget int  // afxdp.Config.TXBudget
}

// Forwarders that undo one step of the pipeline's TX path, to measure the step
// against the default in the same run (--forwarders medialb,medialb_tx32,...).
const (
	// FwdMedialbTX32 is medialb with the kernel's 32 frames per copy-mode sendto
	// (afxdp.TXBudgetKernel) instead of the TX ring size.
	FwdMedialbTX32 = "medialb_tx32"
	// FwdMedialbFastpathTX32 is medialb+fastpath with 32 frames per sendto.
	FwdMedialbFastpathTX32 = "medialb+fastpath_tx32"
	// FwdMedialbBusyPollFastpath is medialb+fastpath with busy polling.
	FwdMedialbBusyPollFastpath = "medialb+fastpath_busypoll"
)

// variant returns the options of a variant forwarder and whether it has the
// fast path on.
func variant(name string) (o dpOptions, fast, ok bool) {
	switch name {
	case FwdMedialbTX32:
		return dpOptions{TXBudget: afxdp.TXBudgetKernel}, false, true
	case FwdMedialbFastpathTX32:
		return dpOptions{TXBudget: afxdp.TXBudgetKernel}, true, true
	case FwdMedialbBusyPollFastpath:
		return dpOptions{BusyPoll: true}, true, true
	}
	return dpOptions{}, false, false
}
