package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"html/template"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"regexp"
	"strings"
	"time"
)

//go:embed ui/index.html ui/static
var uiFiles embed.FS

// contentSecurityPolicy allows the page only its own scripts, styles and API:
// Alpine's CSP build needs no eval, and nothing is loaded from elsewhere, so
// the page works offline and untrusted data from Consul cannot run as code.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// assets are the dashboard's files, read from the binary once.
type assets struct {
	static map[string]staticFile // by path below ui/static
	index  []byte
}

type staticFile struct {
	body        []byte
	hash        string
	contentType string
}

func loadAssets() (*assets, error) {
	a := &assets{static: map[string]staticFile{}}
	root, err := fs.Sub(uiFiles, "ui/static")
	if err != nil {
		return nil, err
	}
	bodies := map[string][]byte{}
	err = fs.WalkDir(root, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		bodies[name], err = fs.ReadFile(root, name)
		return err
	})
	if err != nil {
		return nil, err
	}
	for name := range bodies {
		if err := a.add(name, bodies, nil); err != nil {
			return nil, err
		}
	}
	index, err := template.New("index.html").Funcs(template.FuncMap{"asset": a.url}).ParseFS(uiFiles, "ui/index.html")
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := index.Execute(&buf, nil); err != nil {
		return nil, err
	}
	a.index = buf.Bytes()
	return a, nil
}

// moduleImport is a static import of a sibling module in the page's own
// code, e.g. `import { x } from './api.js';`, one per line.
var moduleImport = regexp.MustCompile(`(?m)^(import [^\n;]* from '\./)([a-z][a-z0-9-]*\.js)(';)$`)

// add hashes a static file. A module's imports of its siblings are first
// rewritten to their hashed URLs, so the hash of the entry module covers
// every module it loads and all of them can be cached for a year: a
// changed module changes the URL of every module that imports it. An
// import cycle would make that impossible and stops the start.
func (a *assets) add(name string, bodies map[string][]byte, importing []string) error {
	if _, done := a.static[name]; done {
		return nil
	}
	for _, n := range importing {
		if n == name {
			return fmt.Errorf("static modules import each other in a cycle: %v", append(importing, name))
		}
	}
	body := bodies[name]
	if path.Ext(name) == ".js" && !strings.HasPrefix(name, "lib/") {
		var missing error
		body = moduleImport.ReplaceAllFunc(body, func(m []byte) []byte {
			parts := moduleImport.FindSubmatch(m)
			dep := path.Join(path.Dir(name), string(parts[2]))
			if _, ok := bodies[dep]; !ok {
				missing = fmt.Errorf("%s imports %s, which is not embedded", name, dep)
				return m
			}
			if err := a.add(dep, bodies, append(importing, name)); err != nil {
				missing = err
				return m
			}
			return []byte(string(parts[1]) + string(parts[2]) + "?v=" + a.static[dep].hash + string(parts[3]))
		})
		if missing != nil {
			return missing
		}
	}
	sum := sha256.Sum256(body)
	contentType := mime.TypeByExtension(path.Ext(name))
	if contentType == "" {
		contentType = "text/plain; charset=utf-8"
	}
	a.static[name] = staticFile{body: body, hash: hex.EncodeToString(sum[:8]), contentType: contentType}
	return nil
}

// url is where the page loads a static file: its content hash in the URL
// lets browsers keep it for a year and still never run a stale copy.
func (a *assets) url(name string) (string, error) {
	f, ok := a.static[name]
	if !ok {
		return "", fmt.Errorf("no static file %q", name)
	}
	return "/static/" + name + "?v=" + f.hash, nil
}

func (s *Server) serveIndex(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", contentSecurityPolicy)
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cache-Control", "no-cache")
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(s.assets.index))
}

func (s *Server) serveStatic(w http.ResponseWriter, r *http.Request) error {
	f, ok := s.assets.static[r.PathValue("path")]
	if !ok {
		return &apiError{http.StatusNotFound, "not found"}
	}
	h := w.Header()
	h.Set("Content-Type", f.contentType)
	h.Set("ETag", `"`+f.hash+`"`)
	if r.URL.Query().Get("v") == f.hash {
		h.Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		h.Set("Cache-Control", "no-cache")
	}
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(f.body))
	return nil
}
