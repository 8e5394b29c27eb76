package api

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/medialb/medialb/config/edit"
)

// Backup & Restore. A backup is one .tar.gz with:
//
//	medialb.yaml        the configuration file as it is on disk (with its
//	                    comments; it holds api.users' bcrypt hashes and ha.secret
//	                    as written)
//	admin-states.json   every real server's operator state (online, drain, halt)
//	api-cert.pem        the certificate the WebUI serves: its public part
//	api-key.pem         its private key: only with ?private_keys=1
//	MANIFEST.txt        what is in it and what is not
//
// Not in it: the pushed virtual_services of an HA secondary, persistence tables,
// logs and report samples (they are rebuilt), keepalived's generated files.
// Restore takes medialb.yaml and admin-states.json; certificates are not
// replaced (put them back by hand if needed).

const (
	backupConfig = "medialb.yaml"
	backupStates = "admin-states.json"
	backupCert   = "api-cert.pem"
	backupKey    = "api-key.pem"
	maxArchive   = 16 << 20
)

// AdminState is one real server's operator state in a backup.
type AdminState struct {
	Service string `json:"service"`
	Server  string `json:"server"`
	State   string `json:"state"` // online, drain or halt
}

// RestoreResult is the answer to a successful POST /api/v1/restore.
type RestoreResult struct {
	Result string       `json:"result"` // "restored"
	Backup string       `json:"backup"` // the replaced file, kept as FILE.N
	States []AdminState `json:"states"` // the operator states set
}

func (s *Server) backupRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/v1/backup", s.handleBackup)
	mux.HandleFunc("POST /api/v1/restore", s.handleRestore)
}

func (s *Server) handleBackup(w http.ResponseWriter, r *http.Request) {
	file, ok := s.configFile(w)
	if !ok {
		return
	}
	cfgText, err := os.ReadFile(file)
	if err != nil {
		writeError(w, http.StatusInternalServerError, fmt.Sprintf("read %s: %v", file, unwrapPath(err)))
		return
	}
	var states []AdminState
	for _, svc := range s.overview().Services {
		for _, rs := range svc.RealServers {
			states = append(states, AdminState{svc.Name, rs.Name, rs.Admin})
		}
	}
	statesJSON, _ := json.MarshalIndent(states, "", "  ")
	var certPEM []byte
	for _, der := range s.cert.Load().Certificate {
		certPEM = append(certPEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	withKeys := r.URL.Query().Get("private_keys") == "1"
	files := []struct {
		name string
		data []byte
	}{
		{backupConfig, cfgText}, {backupStates, append(statesJSON, '\n')}, {backupCert, certPEM},
	}
	manifest := "medialb backup of " + file + ", " + s.now().UTC().Format(time.RFC3339) + "\n\n" +
		backupConfig + ": the configuration file (api.users' password hashes and ha.secret as written in it)\n" +
		backupStates + ": the operator states (online, drain, halt) of every real server\n" +
		backupCert + ": the WebUI's certificate, public part\n"
	if withKeys {
		key, err := s.keyPEM()
		if err != nil {
			writeError(w, http.StatusInternalServerError, err.Error())
			return
		}
		files = append(files, struct {
			name string
			data []byte
		}{backupKey, key})
		manifest += backupKey + ": the WebUI's private key (asked for with private_keys=1: keep this archive secret)\n"
	} else {
		manifest += "\nNot included: private keys (ask with ?private_keys=1).\n"
	}
	manifest += "Not included: persistence tables, logs, report samples, an HA secondary's pushed virtual_services.\n" +
		"Restore (POST /api/v1/restore) validates " + backupConfig + " first, then replaces the file (the old one kept as FILE.N),\n" +
		"reloads and sets the operator states; it does not replace certificates.\n"
	files = append(files, struct {
		name string
		data []byte
	}{"MANIFEST.txt", []byte(manifest)})

	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, f := range files {
		mode := int64(0o640)
		if f.name == backupKey {
			mode = 0o600
		}
		tw.WriteHeader(&tar.Header{Name: f.name, Mode: mode, Size: int64(len(f.data)), ModTime: s.now(), Typeflag: tar.TypeReg})
		tw.Write(f.data)
	}
	tw.Close()
	gz.Close()
	s.log.Info().Str("user", userOf(r)).Str("source", remoteAddr(r).String()).Bool("private_keys", withKeys).Msg("API: backup downloaded")
	name := "medialb-backup-" + s.now().UTC().Format("20060102-150405") + ".tar.gz"
	w.Header().Set("Content-Type", "application/gzip")
	w.Header().Set("Content-Disposition", `attachment; filename="`+name+`"`)
	w.Header().Set("Cache-Control", "no-store")
	w.Write(buf.Bytes())
}

// keyPEM returns the private key the WebUI serves with, from its file.
func (s *Server) keyPEM() ([]byte, error) {
	path := s.cfg.TLSKey
	if path == "" {
		path = filepath.Join(s.cfg.StateDir, KeyFile)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read the WebUI's private key %s: %v", path, unwrapPath(err))
	}
	return data, nil
}

// readBackup reads the files of a backup archive by name.
func readBackup(body io.Reader) (map[string][]byte, error) {
	gz, err := gzip.NewReader(body)
	if err != nil {
		return nil, fmt.Errorf("read the backup: not a .tar.gz made by medialb: %w", err)
	}
	tr := tar.NewReader(gz)
	files := map[string][]byte{}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read the backup: %w", err)
		}
		if h.Typeflag != tar.TypeReg || strings.Contains(h.Name, "/") {
			continue
		}
		data, err := io.ReadAll(io.LimitReader(tr, maxArchive))
		if err != nil {
			return nil, fmt.Errorf("read %s from the backup: %w", h.Name, err)
		}
		files[h.Name] = data
	}
	if files[backupConfig] == nil {
		return nil, fmt.Errorf("read the backup: it has no %s", backupConfig)
	}
	return files, nil
}

// handleRestore validates a backup, then replaces the configuration file (the
// old one kept as FILE.N), reloads and sets the operator states. Nothing is
// replaced when the backup is not valid.
func (s *Server) handleRestore(w http.ResponseWriter, r *http.Request) {
	file, ok := s.configFile(w)
	if !ok {
		return
	}
	files, err := readBackup(http.MaxBytesReader(w, r.Body, maxArchive))
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error()+" (nothing was changed)")
		return
	}
	text := files[backupConfig]
	if problems := edit.Check(file, text); problems != nil {
		writeJSON(w, http.StatusBadRequest, ProblemsAnswer{Errors: problems})
		return
	}
	var states []AdminState
	if data := files[backupStates]; data != nil {
		if err := json.Unmarshal(data, &states); err != nil {
			writeError(w, http.StatusBadRequest, "read "+backupStates+" from the backup: "+err.Error()+" (nothing was changed)")
			return
		}
	}
	if err := checkStates(text, states); err != nil {
		writeError(w, http.StatusBadRequest, err.Error()+" (nothing was changed)")
		return
	}

	s.web.stage.mu.Lock()
	defer s.web.stage.mu.Unlock()
	if s.web.stage.base != nil {
		writeError(w, http.StatusConflict, "configuration changes are staged: apply or discard them before a restore (nothing was changed)")
		return
	}
	disk, err := os.ReadFile(file)
	if err != nil {
		writeError(w, http.StatusInternalServerError, fmt.Sprintf("read %s: %v", file, unwrapPath(err)))
		return
	}
	who := s.log.With().Str("user", userOf(r)).Str("source", remoteAddr(r).String()).Str("file", file).Logger()
	backup, err := s.install(file, disk, text)
	if err != nil {
		who.Warn().Err(err).Msg("API: restore failed: the file is as it was, the running configuration stays")
		writeInstallError(w, err)
		return
	}
	var failed []string
	for _, st := range states {
		if err := s.src.SetState(st.Service, st.Server, st.State); err != nil {
			failed = append(failed, err.Error())
		}
	}
	if len(failed) > 0 {
		who.Warn().Strs("problems", failed).Msg("API: restore: some operator states were not set")
		writeError(w, http.StatusInternalServerError, "restored and reloaded, but some operator states were not set: "+strings.Join(failed, "; "))
		return
	}
	who.Info().Str("backup", backup).Int("states", len(states)).Msg("API: backup restored and reloaded")
	writeJSON(w, http.StatusOK, RestoreResult{Result: "restored", Backup: backup, States: states})
}

// checkStates checks that every state names a server of the configuration text
// and is one of online, drain, halt.
func checkStates(text []byte, states []AdminState) error {
	svcs, err := edit.Services(text)
	if err != nil {
		return err
	}
	known := map[string]bool{}
	for _, sv := range svcs {
		m, _ := sv.(map[string]any)
		name := fmt.Sprint(m["name"])
		list, _ := m["real_servers"].([]any)
		for _, rs := range list {
			rm, _ := rs.(map[string]any)
			n, ok := rm["name"]
			if !ok {
				n = rm["address"]
			}
			known[name+"/"+fmt.Sprint(n)] = true
		}
	}
	for _, st := range states {
		if !known[st.Service+"/"+st.Server] {
			return fmt.Errorf("%s names real server %s of %s, which the backup's configuration does not have", backupStates, st.Server, st.Service)
		}
		switch st.State {
		case "online", "drain", "halt":
		default:
			return fmt.Errorf("%s: state %q of %s/%s: want online, drain or halt", backupStates, st.State, st.Service, st.Server)
		}
	}
	return nil
}
