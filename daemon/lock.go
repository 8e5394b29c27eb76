package daemon

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// LockFile is the file in node.state_dir that one running medialb holds locked.
const LockFile = "medialb.lock"

// ErrStateDirInUse is returned (wrapped) when another medialb holds node.state_dir.
var ErrStateDirInUse = errors.New("state_dir in use")

// lockStateDir takes an exclusive lock (flock) on dir/medialb.lock and writes this
// process's id and node name into it, so that a second medialb on the same
// directory (a manual run beside the service, two test nodes left at the default)
// exits at once instead of killing the first one's keepalived and rewriting its
// files. The lock dies with the process however it ends, kill -9 included; close
// the returned file to release it earlier.
func lockStateDir(dir, node string) (*os.File, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("create state_dir %s: %w", dir, err)
	}
	path := filepath.Join(dir, LockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w (is node.state_dir writable?)", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: state_dir %s is in use by %s; stop it, or give this node its own node.state_dir",
				ErrStateDirInUse, dir, holder(path))
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if err := f.Truncate(0); err == nil {
		_, err = f.WriteAt([]byte(fmt.Sprintf("%d %s\n", os.Getpid(), node)), 0)
	}
	return f, nil
}

// holder describes the process named in a lock file: "medialb pid N (node NAME)".
func holder(path string) string {
	data, _ := os.ReadFile(path)
	f := strings.Fields(string(data))
	if len(f) < 2 {
		return "another medialb"
	}
	if _, err := strconv.Atoi(f[0]); err != nil {
		return "another medialb"
	}
	return fmt.Sprintf("medialb pid %s (node %s)", f[0], f[1])
}
