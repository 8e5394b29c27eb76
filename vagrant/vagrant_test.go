// Package vagrant checks the Vagrantfile at the repository's root and its scripts. The
// VMs themselves run in make vagrant-check, not here (see README.md).
package vagrant

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestVagrantfileValid runs `vagrant validate` on the Vagrantfile with one and with two
// load balancers. Provider options are not checked: no provider (libvirt, VirtualBox)
// needs to be installed for this.
func TestVagrantfileValid(t *testing.T) {
	vagrant, err := exec.LookPath("vagrant")
	if err != nil {
		t.Skip("vagrant not installed (Debian package vagrant)")
	}
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	// The last: as vagrant/lab.sh runs it, with its local box and TCG.
	for i, lbs := range []string{"1", "2", "1"} {
		cmd := exec.Command(vagrant, "validate", "--ignore-provider")
		cmd.Dir = root
		tmp := t.TempDir()
		// Vagrant's state and home in the test's own directory: nothing left in the tree.
		env := []string{"MEDIALB_LBS=" + lbs}
		if i == 2 {
			env = append(env, "MEDIALB_BOX=medialb/bookworm-local", "MEDIALB_LIBVIRT_DRIVER=qemu")
		}
		for _, e := range os.Environ() {
			if !strings.HasPrefix(e, "MEDIALB_") {
				cmd.Env = append(cmd.Env, e)
			}
		}
		cmd.Env = append(cmd.Env, env...)
		cmd.Env = append(cmd.Env, "VAGRANT_DOTFILE_PATH="+filepath.Join(tmp, "dot"),
			"VAGRANT_HOME="+filepath.Join(tmp, "home"), "VAGRANT_CHECKPOINT_DISABLE=1")
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "validated successfully") {
			t.Errorf("%v vagrant validate: %v\n%s", env, err, out)
		}
		if lbs == "2" && !strings.Contains(string(out), "lb2") {
			t.Errorf("MEDIALB_LBS=2: no lb2 in\n%s", out)
		}
	}
}

// TestProvisionScript checks the shell syntax of the provisioning script and of the
// scripts of make vagrant-check.
func TestProvisionScript(t *testing.T) {
	for _, f := range []string{"provision.sh", "box.sh", "lab.sh", "check.sh"} {
		out, err := exec.Command("sh", "-n", f).CombinedOutput()
		if err != nil {
			t.Errorf("sh -n %s: %v\n%s", f, err, out)
		}
	}
}
