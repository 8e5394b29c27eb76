package api

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"net/http"
	"strings"
	"text/template"
	"time"
)

// The WebUI: plain HTML, CSS and JavaScript embedded in the binary; nothing is
// loaded from elsewhere.
//
//go:embed ui
var uiFiles embed.FS

// uiCSP allows the page its own scripts, styles and API calls, and nothing else.
const uiCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

type uiFile struct {
	name string
	data []byte
	etag string
}

func (f uiFile) serve(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", uiCSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-cache")
	h.Set("ETag", f.etag)
	http.ServeContent(w, r, f.name, time.Time{}, strings.NewReader(string(f.data)))
}

// pages are the WebUI's pages besides the System Overview: /NAME serves ui/NAME.html.
var pages = []string{"cluster", "maintenance", "view", "reports", "logs"}

// pageFile renders ui/pages/NAME.html into ui/layout.html: the head, the
// navigation bar and the page's script (ui/NAME.js) are the layout's; the first
// line of the page, "<!-- title: TITLE -->", names it.
func pageFile(name string) uiFile {
	body, err := uiFiles.ReadFile("ui/pages/" + name + ".html")
	if err != nil {
		panic("WebUI page " + name + " is not embedded: " + err.Error())
	}
	first, rest, _ := strings.Cut(string(body), "\n")
	title := strings.TrimSuffix(strings.TrimPrefix(first, "<!-- title: "), " -->")
	var b strings.Builder
	layout := template.Must(template.ParseFS(uiFiles, "ui/layout.html"))
	if err := layout.Execute(&b, struct{ Name, Title, Body string }{name, title, rest}); err != nil {
		panic("WebUI page " + name + ": " + err.Error())
	}
	sum := sha256.Sum256([]byte(b.String()))
	return uiFile{name: name + ".html", data: []byte(b.String()), etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
}

// uiRoutes serves index.html at / and the other files under /ui/.
func (s *Server) uiRoutes(mux *http.ServeMux) {
	files := map[string]uiFile{}
	fs.WalkDir(uiFiles, "ui", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := uiFiles.ReadFile(path)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(data)
		name := strings.TrimPrefix(path, "ui/")
		files[name] = uiFile{name: name, data: data, etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
		return nil
	})
	index := files["index.html"]
	mux.HandleFunc("GET /{$}", index.serve)
	// The other pages, at the names the navigation bar links to.
	for _, page := range pages {
		f := pageFile(page)
		mux.HandleFunc("GET /"+page, f.serve)
	}
	delete(files, "layout.html")
	mux.HandleFunc("GET /ui/{file}", func(w http.ResponseWriter, r *http.Request) {
		f, ok := files[r.PathValue("file")]
		if !ok || f.name == "index.html" {
			writeError(w, http.StatusNotFound, "no such page: "+r.URL.Path)
			return
		}
		f.serve(w, r)
	})
	mux.HandleFunc("GET /favicon.ico", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/ui/icon.svg", http.StatusMovedPermanently)
	})
}
