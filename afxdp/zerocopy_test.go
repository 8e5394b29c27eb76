package afxdp

import (
	"errors"
	"fmt"
	"testing"

	"golang.org/x/sys/unix"
)

// TestZeroCopyFallback: zero_copy auto falls back to copy mode on any failed
// zero-copy bind (virtio-net without iommu_platform answers EINVAL, not
// EOPNOTSUPP), but not on EBUSY, a copy-mode bind, another error, or "on".
func TestZeroCopyFallback(t *testing.T) {
	zcBind := func(e error) error {
		return fmt.Errorf("open: %w", &bindError{queue: 1, flags: unix.XDP_ZEROCOPY, err: e})
	}
	tests := []struct {
		name      string
		zc        string
		err       error
		want      bool
		wantErrno unix.Errno
	}{
		{"auto, EOPNOTSUPP (veth)", ZeroCopyAuto, zcBind(unix.EOPNOTSUPP), true, unix.EOPNOTSUPP},
		{"auto, EINVAL (virtio-net without IOMMU)", ZeroCopyAuto, zcBind(unix.EINVAL), true, unix.EINVAL},
		{"auto, ENOMEM", ZeroCopyAuto, zcBind(unix.ENOMEM), true, unix.ENOMEM},
		{"auto, EBUSY: queue held, copy would fail too", ZeroCopyAuto, zcBind(unix.EBUSY), false, unix.EBUSY},
		{"on, EINVAL: fails loudly", ZeroCopyOn, zcBind(unix.EINVAL), false, 0},
		{"on, EOPNOTSUPP: fails loudly", ZeroCopyOn, zcBind(unix.EOPNOTSUPP), false, 0},
		{"auto, copy-mode bind failed", ZeroCopyAuto, &bindError{flags: unix.XDP_COPY, err: unix.EINVAL}, false, 0},
		{"auto, not a bind error", ZeroCopyAuto, fmt.Errorf("map RX ring: %w", unix.ENOMEM), false, 0},
		{"auto, no error", ZeroCopyAuto, nil, false, 0},
		{"auto, bind error without errno", ZeroCopyAuto, zcBind(errors.New("odd")), true, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			errno, got := zeroCopyFallback(tt.zc, tt.err)
			if got != tt.want || errno != tt.wantErrno {
				t.Errorf("zeroCopyFallback(%s, %v) = %v, %v; want %v, %v", tt.zc, tt.err, errno, got, tt.wantErrno, tt.want)
			}
		})
	}
	if n := errnoName(unix.EINVAL); n != "EINVAL" {
		t.Errorf("errnoName(EINVAL) = %q", n)
	}
}
