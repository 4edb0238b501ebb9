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
	err = fs.WalkDir(root, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := fs.ReadFile(root, name)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(body)
		contentType := mime.TypeByExtension(path.Ext(name))
		if contentType == "" {
			contentType = "text/plain; charset=utf-8"
		}
		a.static[name] = staticFile{body: body, hash: hex.EncodeToString(sum[:8]), contentType: contentType}
		return nil
	})
	if err != nil {
		return nil, err
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
