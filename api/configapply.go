package api

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/medialb/medialb/config/edit"
	"github.com/medialb/medialb/internal/atomicfile"
)

// MaxBackups is the number of numbered backups (FILE.1, FILE.2, ...) an apply
// keeps of the configuration file; older ones are removed.
const MaxBackups = 20

// RunningConfig is implemented by a [Source] that knows the text of the
// configuration in force (the file as it was at start or at the last
// successful reload), for View Configuration.
type RunningConfig interface {
	RunningConfig() []byte
}

// ApplyResult is the answer to a successful POST /api/v1/config/apply.
type ApplyResult struct {
	Result string `json:"result"` // "applied"
	File   string `json:"file"`
	Backup string `json:"backup"` // the previous text, kept as FILE.N
}

// handleConfigApply writes the staged text over the file (the old one kept as
// the next numbered backup) and reloads. A reload that fails puts the old text
// back; the changes stay staged.
func (s *Server) handleConfigApply(w http.ResponseWriter, r *http.Request) {
	file, ok := s.configFile(w)
	if !ok {
		return
	}
	s.web.stage.mu.Lock()
	defer s.web.stage.mu.Unlock()
	if s.web.stage.base == nil {
		writeError(w, http.StatusBadRequest, "nothing to apply: no configuration change is staged")
		return
	}
	disk, err := os.ReadFile(file)
	if err != nil {
		writeError(w, http.StatusInternalServerError, fmt.Sprintf("read %s: %v", file, unwrapPath(err)))
		return
	}
	if !bytes.Equal(disk, s.web.stage.base) {
		writeError(w, http.StatusConflict, file+" was changed on disk after the first staged change: "+
			"discard the staged changes (DELETE /api/v1/config/staged) and make them again")
		return
	}
	if problems := edit.Check(file, s.web.stage.text); problems != nil {
		writeJSON(w, http.StatusBadRequest, ProblemsAnswer{Errors: problems})
		return
	}
	who := s.log.With().Str("user", userOf(r)).Str("source", remoteAddr(r).String()).Str("file", file).Logger()
	backup, err := s.install(file, disk, s.web.stage.text)
	if err != nil {
		who.Warn().Err(err).Msg("API: apply failed: the file is as it was, the running configuration stays, the changes stay staged")
		writeInstallError(w, err)
		return
	}
	s.web.stage.base, s.web.stage.text = nil, nil
	who.Info().Str("backup", backup).Msg("API: configuration changes applied and reloaded")
	writeJSON(w, http.StatusOK, ApplyResult{Result: "applied", File: file, Backup: backup})
}

// install keeps old, the file's text, as its next numbered backup, writes text
// over file and reloads; when the reload fails it puts old back.
func (s *Server) install(file string, old, text []byte) (string, error) {
	backup, err := writeBackup(file, old)
	if err == nil {
		err = writeFileAtomic(file, text)
	}
	if err != nil {
		return "", fmt.Errorf("%w (nothing was changed)", err)
	}
	if _, err := s.src.Reload(); err != nil {
		if rerr := writeFileAtomic(file, old); rerr != nil {
			err = fmt.Errorf("%w; and putting the old text back failed: %v (it is in %s)", err, rerr, backup)
		}
		return "", err
	}
	return backup, nil
}

// writeInstallError answers a failed install: 422 with the problems of an
// invalid file, else 500.
func writeInstallError(w http.ResponseWriter, err error) {
	var lines interface{ Lines() []string }
	if errors.As(err, &lines) {
		writeJSON(w, http.StatusUnprocessableEntity, ReloadResult{Error: err.Error(), Problems: lines.Lines()})
		return
	}
	writeJSON(w, http.StatusInternalServerError, ReloadResult{Error: err.Error()})
}

// writeBackup keeps data as file.N, N one more than the highest number there,
// and removes all but the last MaxBackups.
func writeBackup(file string, data []byte) (string, error) {
	nums, err := backups(file)
	if err != nil {
		return "", err
	}
	next := 1
	if len(nums) > 0 {
		next = nums[len(nums)-1] + 1
	}
	name := file + "." + strconv.Itoa(next)
	if err := writeFileAtomic(name, data); err != nil {
		return "", fmt.Errorf("keep the old configuration as a backup: %w", err)
	}
	nums = append(nums, next)
	for _, n := range nums[:max(len(nums)-MaxBackups, 0)] {
		os.Remove(file + "." + strconv.Itoa(n))
	}
	return name, nil
}

// backups returns the numbers of file's backups, ascending.
func backups(file string) ([]int, error) {
	ents, err := os.ReadDir(filepath.Dir(file))
	if err != nil {
		return nil, fmt.Errorf("list the backups of %s: %w", file, err)
	}
	prefix := filepath.Base(file) + "."
	var nums []int
	for _, e := range ents {
		if n, err := strconv.Atoi(strings.TrimPrefix(e.Name(), prefix)); err == nil && strings.HasPrefix(e.Name(), prefix) && n > 0 {
			nums = append(nums, n)
		}
	}
	sort.Ints(nums)
	return nums, nil
}

// writeFileAtomic replaces name by data through atomicfile.Write (synced,
// renamed, the directory synced), keeping name's permissions.
func writeFileAtomic(name string, data []byte) error {
	mode := os.FileMode(0o640)
	if fi, err := os.Stat(name); err == nil {
		mode = fi.Mode().Perm()
	}
	if err := atomicfile.Write(name, data, mode); err != nil {
		return fmt.Errorf("%w (the directory must be writable by medialb)", err)
	}
	return nil
}

// FileView is View Configuration: the file on disk, the text in force, and
// how they differ.
type FileView struct {
	File    string      `json:"file"`
	Disk    string      `json:"disk"`
	Running string      `json:"running"`           // empty when the node cannot tell
	Diff    []edit.Line `json:"diff"`              // running (-) against disk (+)
	Changed bool        `json:"changed"`           // the file differs from what runs
	Staged  bool        `json:"staged"`            // changes wait for apply
	Backups []string    `json:"backups,omitempty"` // the numbered backups, oldest first
}

func (s *Server) handleConfigFile(w http.ResponseWriter, r *http.Request) {
	file, ok := s.configFile(w)
	if !ok {
		return
	}
	disk, err := os.ReadFile(file)
	if err != nil {
		writeError(w, http.StatusInternalServerError, fmt.Sprintf("read %s: %v", file, unwrapPath(err)))
		return
	}
	disk = maskSecrets(disk)
	v := FileView{File: file, Disk: string(disk)}
	if rc, ok := s.src.(RunningConfig); ok {
		running := maskSecrets(rc.RunningConfig())
		v.Running, v.Diff = string(running), edit.Diff(running, disk)
		v.Changed = edit.Changed(v.Diff)
	}
	s.web.stage.mu.Lock()
	v.Staged = s.web.stage.base != nil
	s.web.stage.mu.Unlock()
	nums, _ := backups(file)
	for _, n := range nums {
		v.Backups = append(v.Backups, file+"."+strconv.Itoa(n))
	}
	writeJSON(w, http.StatusOK, v)
}

// secretRE matches a line that sets a password or a secret (alerts.email.password,
// ha.secret, bgp peers' password): its value is not shown in the WebUI.
var secretRE = regexp.MustCompile(`(?m)^(\s*(?:-\s+)?(?:password|secret)\s*:\s*)([^\s#][^#\n]*?)(\s*(?:#.*)?)$`)

// maskSecrets returns text with every password and secret value replaced.
func maskSecrets(text []byte) []byte {
	return secretRE.ReplaceAll(text, []byte(`${1}"(hidden)"${3}`))
}
