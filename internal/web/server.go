// Package web serves consul-monitor's JSON API and its embedded dashboard.
package web

import (
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"reflect"
	"runtime/debug"
	"sync"
	"time"

	"github.com/klauspost/compress/gzhttp"

	"github.com/consul-monitor/consul-monitor/internal/health"
	"github.com/consul-monitor/consul-monitor/internal/store"
	"github.com/consul-monitor/consul-monitor/internal/watch"
)

// MaxBodyBytes is the largest request body accepted; more gets 413.
const MaxBodyBytes = 64 << 10

// Store is the part of the history store the API reads.
type Store interface {
	Published() store.Published
	LastRecorded() time.Time
	HistoryEnd(now time.Time) time.Time
	Recording(ctx context.Context, id string, from, until time.Time) (health.Recording, error)
	Recordings(ctx context.Context, from, until time.Time) (map[string]store.InstanceRecording, error)
	// Incidents are every instance's and service's figures for the
	// history as it ends at now, kept while they stay true.
	Incidents(ctx context.Context, now time.Time) (*store.Incidents, error)
	// ProbeWrite proves that the database takes writes now.
	ProbeWrite(ctx context.Context) error
	// Events are recorded changes, newest first, a page at a time.
	Events(ctx context.Context, f store.EventFilter) (store.EventPage, error)
}

// Watcher reports on the background watcher.
type Watcher interface {
	Status() watch.Status
	// Live is Consul's state as last received, recorded or not.
	Live() store.Published
}

// Server is the HTTP handler for the API and the dashboard.
type Server struct {
	store    Store
	watcher  Watcher
	settings settingsCookie
	assets   *assets
	services servicesCache
	log      *slog.Logger
	mux      *http.ServeMux
	// Hosts are the Host headers answered; any other gets 421. New sets
	// loopback only; the command sets what --web.allowed-hosts gives.
	Hosts *Hosts
	// Now is the clock; tests replace it.
	Now func() time.Time
}

// embeddedAssets are read and hashed once per process.
var embeddedAssets = sync.OnceValues(loadAssets)

// New returns the handler. signingKey signs the settings cookies.
func New(st Store, w Watcher, signingKey []byte, log *slog.Logger) *Server {
	ui, err := embeddedAssets()
	if err != nil {
		panic("web: the dashboard embedded in the binary is broken: " + err.Error())
	}
	loopbackOnly, err := NewHosts(loopback...)
	if err != nil {
		panic("web: loopback hosts: " + err.Error())
	}
	s := &Server{store: st, watcher: w, settings: settingsCookie{key: signingKey}, assets: ui, log: log, mux: http.NewServeMux(), Hosts: loopbackOnly, Now: time.Now}
	s.mux.HandleFunc("GET /{$}", s.serveIndex)
	s.mux.Handle("GET /static/{path...}", s.api(s.serveStatic))
	s.mux.Handle("GET /api/services", s.jsonAPI(s.listServices))
	s.mux.Handle("GET /api/services/{id}/history", s.jsonAPI(s.serviceHistory))
	s.mux.Handle("GET /api/history", s.jsonAPI(s.allHistory))
	s.mux.Handle("GET /api/events", s.jsonAPI(s.listEvents))
	s.mux.Handle("GET /api/config", s.jsonAPI(s.getConfig))
	s.mux.Handle("POST /api/config", s.jsonAPI(s.postConfig))
	s.mux.Handle("GET /healthz", s.jsonAPI(s.healthz))
	return s
}

// ServeHTTP answers every request, including a host not served, the
// router's own 404, 405 and redirects, and any panic, with the same JSON
// error shape.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			s.log.Error("handler panicked", "method", r.Method, "path", r.URL.Path, "panic", v, "stack", string(debug.Stack()))
			writeJSON(w, http.StatusInternalServerError, errorBody{"internal error"})
		}
	}()
	w.Header().Set("X-Content-Type-Options", "nosniff")
	// Before anything else, /healthz included: its errors name Consul's
	// address and the database's path. Probes reach it as localhost or by
	// an IP address of this machine, which are allowed.
	if !s.Hosts.Allows(r.Host) {
		s.log.Info("refused a request for a host not served here (see --web.allowed-hosts)", "host", truncate(r.Host, 100), "method", r.Method, "path", truncate(r.URL.Path, 100))
		writeJSON(w, http.StatusMisdirectedRequest, errorBody{"this server does not answer to the host name in the request; its operator can add it to --web.allowed-hosts"})
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, MaxBodyBytes)
	if h, pattern := s.mux.Handler(r); pattern == "" || reflect.TypeOf(h) == redirectHandler {
		s.mux.ServeHTTP(&routerErrorWriter{ResponseWriter: w}, r)
		return
	}
	s.mux.ServeHTTP(w, r)
}

// redirectHandler is the type of the handler the router returns for a path
// it cleans ("//api/services", "/api/../healthz") or completes with a
// slash ("/static"): its HTML answer is replaced by JSON too.
var redirectHandler = reflect.TypeOf(http.RedirectHandler("/", http.StatusMovedPermanently))

// routerErrorWriter turns the router's plain-text 404 and 405 and its HTML
// redirects into JSON, keeping their status and the Allow and Location
// headers.
type routerErrorWriter struct {
	http.ResponseWriter
	wroteHeader bool
}

func (w *routerErrorWriter) WriteHeader(status int) {
	if w.wroteHeader {
		return
	}
	w.wroteHeader = true
	msg := "not found"
	switch {
	case status == http.StatusMethodNotAllowed:
		msg = "method not allowed"
	case status >= 300 && status < 400:
		// The status and Location stay, so clients follow it as before.
		msg = "moved to " + w.Header().Get("Location")
	}
	writeJSON(w.ResponseWriter, status, errorBody{msg})
}

func (w *routerErrorWriter) Write(b []byte) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	return len(b), nil // the router's text body is replaced by the JSON above
}

// apiError is an error whose message is meant for the client.
type apiError struct {
	status int
	msg    string
}

func (e *apiError) Error() string { return e.msg }

// readBody reads a request's body, answering the client's own mistakes
// as such: a body shorter than its Content-Length is a 400 and one that
// stops arriving (the server's ReadTimeout) a 408. They are logged below
// ERROR, as nothing on this side failed.
func (s *Server) readBody(r *http.Request) ([]byte, error) {
	body, err := io.ReadAll(r.Body)
	var tooLarge *http.MaxBytesError
	var netErr net.Error
	switch {
	case err == nil, errors.As(err, &tooLarge):
		return body, err
	case errors.Is(err, io.ErrUnexpectedEOF):
		s.log.Debug("request body ended before its Content-Length", "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr)
		return nil, &apiError{http.StatusBadRequest, "request body ended before its Content-Length"}
	case errors.As(err, &netErr) && netErr.Timeout():
		s.log.Info("request body stopped arriving", "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr)
		return nil, &apiError{http.StatusRequestTimeout, "request body did not arrive in time"}
	default: // a reset or a malformed chunked body: still the client's side
		s.log.Debug("request body could not be read", "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr, "err", err)
		return nil, &apiError{http.StatusBadRequest, "request body could not be read"}
	}
}

func badRequest(format string, args ...any) error {
	return &apiError{http.StatusBadRequest, fmt.Sprintf(format, args...)}
}

type errorBody struct {
	Error string `json:"error"`
}

// api adapts a handler that returns an error, so that errors become
// responses in exactly one place.
func (s *Server) api(h func(http.ResponseWriter, *http.Request) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			s.writeError(w, r, err)
		}
	})
}

// jsonAPI is api for the JSON answers, gzipped when the client accepts it.
func (s *Server) jsonAPI(h func(http.ResponseWriter, *http.Request) error) http.Handler {
	return compressJSON(s.api(h))
}

// compressJSON leaves content negotiation to gzhttp, which honours q-values
// ("gzip;q=0" gets identity) and answers small bodies uncompressed. zstd is
// off so that a compressing writer always means gzip: acceptsGzip relies on it.
var compressJSON = func() func(http.Handler) http.HandlerFunc {
	wrap, err := gzhttp.NewWrapper(gzhttp.EnableZstd(false), gzhttp.CompressionLevel(gzip.BestSpeed))
	if err != nil {
		panic("web: gzhttp options: " + err.Error())
	}
	return wrap
}()

// acceptsGzip tells a handler behind compressJSON whether the client takes
// gzip, so that it can send a body it keeps already compressed: gzhttp hands
// the handler its compressing writer only then, and passes through a body
// whose Content-Encoding is already set.
func acceptsGzip(w http.ResponseWriter) bool {
	switch w.(type) {
	case *gzhttp.GzipResponseWriter, gzhttp.GzipResponseWriterWithCloseNotify:
		return true
	}
	return false
}

func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var ae *apiError
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &ae):
		writeJSON(w, ae.status, errorBody{ae.msg})
	case errors.Is(err, store.ErrNotFound):
		writeJSON(w, http.StatusNotFound, errorBody{"no such service instance"})
	case errors.As(err, &tooLarge):
		writeJSON(w, http.StatusRequestEntityTooLarge, errorBody{fmt.Sprintf("request body is larger than %d bytes", tooLarge.Limit)})
	case errors.Is(err, context.Canceled) && r.Context().Err() != nil:
		// The client went away; there is nobody to answer.
	default:
		// Internal details go to the log, not to the client.
		s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		writeJSON(w, http.StatusInternalServerError, errorBody{"internal error"})
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		status, body = http.StatusInternalServerError, []byte(`{"error":"internal error"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}
