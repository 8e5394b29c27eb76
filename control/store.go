package control

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/medialb/medialb/internal/atomicfile"
	"github.com/medialb/medialb/tables"
)

// Key names one real server of one virtual service (tables' word for it).
type Key = tables.Key

// AdminStore keeps the administrative states an operator set (drain, halt) in a file in
// node.state_dir, so that a server drained for maintenance stays drained across a
// restart and a reload. Online is the absence of an entry. The file is replaced
// atomically (write to a temporary file, then rename). AdminStore is not safe for
// concurrent use; the Controller serialises access.
type AdminStore struct {
	path string
}

// adminFile is the on-disk form: a sorted list, so the file diffs well.
type adminFile struct {
	Servers []adminEntry `json:"servers"`
}

type adminEntry struct {
	Service string `json:"service"`
	Server  string `json:"server"`
	State   string `json:"state"`
}

// OpenAdminStore uses dir/admin-state.json. An empty dir means no persistence.
func OpenAdminStore(dir string) *AdminStore {
	if dir == "" {
		return &AdminStore{}
	}
	return &AdminStore{path: filepath.Join(dir, "admin-state.json")}
}

// ErrCorrupt is returned (wrapped) by Load for a file that cannot be parsed; the
// file has been renamed aside by then.
var ErrCorrupt = errors.New("administrative-state file corrupt")

// Load reads the stored states. A missing file is an empty set. A file that
// cannot be parsed (or names a state other than drain or halt) is renamed to
// FILE.corrupt-TIMESTAMP, kept for the operator, and Load returns an error
// wrapping ErrCorrupt: which servers were halted is then unknown.
func (s *AdminStore) Load() (map[Key]tables.State, error) {
	m := map[Key]tables.State{}
	if s.path == "" {
		return m, nil
	}
	data, err := os.ReadFile(s.path)
	if errors.Is(err, fs.ErrNotExist) {
		return m, nil
	}
	if err != nil {
		return m, fmt.Errorf("read administrative states: %w", err)
	}
	var f adminFile
	err = json.Unmarshal(data, &f)
	for _, e := range f.Servers {
		st, ok := ParseAdminState(e.State)
		if err == nil && (!ok || e.Service == "" || e.Server == "") {
			err = fmt.Errorf("entry %s/%s has state %q", e.Service, e.Server, e.State)
		}
		if ok && st != tables.StateOnline {
			m[Key{Service: e.Service, Server: e.Server}] = st
		}
	}
	if err != nil {
		aside := s.path + ".corrupt-" + time.Now().UTC().Format("20060102T150405Z")
		if rerr := os.Rename(s.path, aside); rerr != nil {
			return map[Key]tables.State{}, fmt.Errorf("read administrative states from %s: %w: %w (and it could not be renamed aside: %v)", s.path, ErrCorrupt, err, rerr)
		}
		return map[Key]tables.State{}, fmt.Errorf("read administrative states from %s: %w: %w (kept as %s)", s.path, ErrCorrupt, err, aside)
	}
	return m, nil
}

// Save writes states atomically.
func (s *AdminStore) Save(states map[Key]tables.State) error {
	if s.path == "" {
		return nil
	}
	var f adminFile
	for k, st := range states {
		if st == tables.StateOnline {
			continue
		}
		f.Servers = append(f.Servers, adminEntry{k.Service, k.Server, st.String()})
	}
	sort.Slice(f.Servers, func(i, j int) bool {
		a, b := f.Servers[i], f.Servers[j]
		return a.Service < b.Service || a.Service == b.Service && a.Server < b.Server
	})
	data, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.Write(s.path, append(data, '\n'), 0o640); err != nil {
		return fmt.Errorf("save administrative states: %w", err)
	}
	return nil
}

// ParseAdminState maps the API's names to states an operator may set.
func ParseAdminState(s string) (tables.State, bool) {
	switch s {
	case "online":
		return tables.StateOnline, true
	case "drain":
		return tables.StateDrain, true
	case "halt":
		return tables.StateHalt, true
	}
	return 0, false
}
