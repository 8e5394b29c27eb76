// Package vagrant checks the Vagrantfile at the repository's root and its provisioning
// script. The VMs themselves cannot run in the test environment (see README.md).
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
	for _, lbs := range []string{"1", "2"} {
		cmd := exec.Command(vagrant, "validate", "--ignore-provider")
		cmd.Dir = root
		tmp := t.TempDir()
		// Vagrant's state and home in the test's own directory: nothing left in the tree.
		cmd.Env = append(os.Environ(), "MEDIALB_LBS="+lbs, "VAGRANT_DOTFILE_PATH="+filepath.Join(tmp, "dot"),
			"VAGRANT_HOME="+filepath.Join(tmp, "home"), "VAGRANT_CHECKPOINT_DISABLE=1")
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "validated successfully") {
			t.Errorf("MEDIALB_LBS=%s vagrant validate: %v\n%s", lbs, err, out)
		}
		if lbs == "2" && !strings.Contains(string(out), "lb2") {
			t.Errorf("MEDIALB_LBS=2: no lb2 in\n%s", out)
		}
	}
}

// TestProvisionScript checks the provisioning script's shell syntax.
func TestProvisionScript(t *testing.T) {
	out, err := exec.Command("sh", "-n", "provision.sh").CombinedOutput()
	if err != nil {
		t.Errorf("sh -n provision.sh: %v\n%s", err, out)
	}
}
