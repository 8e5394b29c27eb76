package pipeline

import "github.com/medialb/medialb/afxdp"

// The worker runs on real sockets.
var _ Port = (*afxdp.Socket)(nil)
