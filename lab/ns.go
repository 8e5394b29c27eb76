package lab

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vishvananda/netns"
)

// netnsDir is where named network namespaces are bind-mounted (as by `ip netns add`).
const netnsDir = "/run/netns"

// Do runs fn on an OS thread switched into the named network namespace ns, and switches the
// thread back before it is used for anything else. Sockets created inside fn stay in ns
// after Do returns, so Do is the way to open connections and listeners from inside a lab
// namespace. fn must not start goroutines that expect to be in ns (they are not).
//
// Do runs fn on a fresh goroutine locked to its thread; if switching back fails, the
// goroutine exits still locked, and the runtime discards the thread instead of reusing it
// in the wrong namespace.
func Do(ns string, fn func() error) error {
	target, err := netns.GetFromName(ns)
	if err != nil {
		return fmt.Errorf("open network namespace %q: %w (is the lab up?)", ns, err)
	}
	defer target.Close()
	return doIn(target, fn)
}

func doIn(target netns.NsHandle, fn func() error) error {
	return onThread(func() error {
		if err := netns.Set(target); err != nil {
			return fmt.Errorf("enter network namespace: %w", err)
		}
		return fn()
	})
}

// onThread runs fn on a fresh goroutine locked to its OS thread and returns the thread
// to the network namespace it started in; if that fails, the goroutine exits still
// locked and the runtime discards the thread instead of reusing it in the wrong
// namespace. fn may move the thread to another namespace (setns, unshare).
func onThread(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		origin, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("get current network namespace: %w", err)
			return
		}
		defer origin.Close()
		ferr := fn()
		if err := netns.Set(origin); err != nil {
			// Stay locked: the thread dies with this goroutine.
			errc <- errors.Join(ferr, fmt.Errorf("return to original network namespace: %w", err))
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// Exec returns a command that runs name with args inside the named network namespace ns,
// through `ip netns exec` (iproute2; it also mounts the namespace's own /sys for the
// command). The command is not started; its process is the program itself (ip execs it).
func Exec(ns, name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", ns, name}, args...)...)
}

// run runs a command in ns and returns its combined output in the error.
func run(ns, name string, args ...string) error {
	out, err := Exec(ns, name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("run %s %s in %s: %w: %s", name, strings.Join(args, " "), ns, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// newNS creates the named network namespace ns without moving the caller anywhere.
func newNS(ns string) error {
	return onThread(func() error {
		h, err := netns.NewNamed(ns) // unshares this thread into the new namespace
		if err != nil {
			return fmt.Errorf("create network namespace %q: %w", ns, err)
		}
		h.Close()
		return nil
	})
}

// deleteNS kills every process left in the named namespace ns and removes its name; the
// kernel then destroys the namespace and its interfaces (veth peers elsewhere go too).
func deleteNS(ns string) error {
	path := filepath.Join(netnsDir, ns)
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	killIn(path)
	if err := netns.DeleteNamed(ns); err != nil {
		// A half-created entry (file but no mount) cannot be unmounted: remove the file.
		if rerr := os.Remove(path); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
			return fmt.Errorf("delete network namespace %q: %w", ns, errors.Join(err, rerr))
		}
	}
	return nil
}

// killIn sends SIGKILL to the processes whose network namespace is the one bind-mounted at
// path (what `ip netns pids` lists), and waits briefly for them to go. These are processes
// started in the lab (a simulated server, a command of a test); a namespace with a process
// left in it would outlive its name.
func killIn(path string) {
	fi, err := os.Stat(path)
	if err != nil {
		return
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return
	}
	want := "net:[" + strconv.FormatUint(st.Ino, 10) + "]"
	pids := pidsWithNetNS(want)
	for _, pid := range pids {
		if p, err := os.FindProcess(pid); err == nil {
			p.Kill() //nolint:errcheck // it may be gone already
		}
	}
	for deadline := time.Now().Add(2 * time.Second); len(pids) > 0 && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
		pids = pidsWithNetNS(want)
	}
}

func pidsWithNetNS(link string) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	self := os.Getpid()
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		if l, err := os.Readlink("/proc/" + e.Name() + "/ns/net"); err == nil && l == link {
			pids = append(pids, pid)
		}
	}
	return pids
}

// listNS returns the names of the named network namespaces.
func listNS() ([]string, error) {
	ents, err := os.ReadDir(netnsDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list network namespaces: %w", err)
	}
	names := make([]string, 0, len(ents))
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names, nil
}

// sysctls writes /proc/sys files (paths relative to /proc/sys) inside ns. /proc/sys/net
// belongs to the network namespace of the writing thread, hence Do.
func sysctls(ns string, kv ...string) error {
	return Do(ns, func() error {
		if err := WriteSysctls(kv...); err != nil {
			return fmt.Errorf("in %s: %w", ns, err)
		}
		return nil
	})
}

// PlainSwitch makes the bridges of the calling thread's namespace plain switches: with
// br_netfilter loaded on the host (libvirt, Docker and Vagrant load it), a new
// namespace's bridge hands IPv4, IPv6 and ARP frames to netfilter, which drops those
// with broken headers, so a malformed-frame barrage never reached the load balancer.
// Without br_netfilter there is nothing to turn off.
func PlainSwitch() error {
	for _, f := range []string{"bridge-nf-call-iptables", "bridge-nf-call-ip6tables", "bridge-nf-call-arptables"} {
		if _, err := os.Stat("/proc/sys/net/bridge/" + f); err != nil {
			continue
		}
		if err := WriteSysctls("net/bridge/"+f, "0"); err != nil {
			return fmt.Errorf("plain switch: %w", err)
		}
	}
	return nil
}
