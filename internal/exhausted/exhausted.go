// Package exhausted tells an error of this node's own exhaustion from an
// answer of the far end: health checks and the layer-7 proxy must not blame
// a real server for the load balancer running out of descriptors or ports.
package exhausted

import (
	"errors"
	"syscall"
)

// Is reports whether err says that this node is out of something: file
// descriptors (EMFILE, ENFILE), ephemeral ports or a usable source address
// (EADDRNOTAVAIL), or buffer space (ENOBUFS).
func Is(err error) bool {
	for _, e := range []syscall.Errno{syscall.EMFILE, syscall.ENFILE, syscall.EADDRNOTAVAIL, syscall.ENOBUFS} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}
