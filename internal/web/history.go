package web

import (
	"net/http"
	"strconv"
	"time"

	"github.com/consul-monitor/consul-monitor/internal/health"
)

type historyResponse struct {
	ServiceID   string       `json:"service_id"`
	Granularity int          `json:"granularity"`
	Data        []windowJSON `json:"data"`
}

type windowJSON struct {
	Timestamp time.Time `json:"timestamp"`
	Passing   float64   `json:"passing"`
	Warning   float64   `json:"warning"`
	Critical  float64   `json:"critical"`
	NoData    float64   `json:"nodata"`
}

// serviceHistory answers with one instance's last 24 hours in windows.
func (s *Server) serviceHistory(w http.ResponseWriter, r *http.Request) error {
	granularity, err := s.granularity(r)
	if err != nil {
		return err
	}
	id := r.PathValue("id")
	now := s.Now()
	window := time.Duration(granularity) * time.Minute
	rec, err := s.store.Recording(r.Context(), id, health.HistoryStart(now, window), now)
	if err != nil {
		return err
	}
	windows := health.Windows(rec, now, window)
	resp := historyResponse{ServiceID: id, Granularity: granularity, Data: make([]windowJSON, len(windows))}
	for i, win := range windows {
		resp.Data[i] = windowJSON{Timestamp: win.Start, Passing: win.Passing, Warning: win.Warning, Critical: win.Critical, NoData: win.NoData}
	}
	writeJSON(w, http.StatusOK, resp)
	return nil
}

type batchHistoryResponse struct {
	Granularity int       `json:"granularity"`
	Start       time.Time `json:"start"`
	Windows     int       `json:"windows"`
	// Services maps each current instance to its windows, oldest first, as
	// runs of identical windows: [count, passing, warning, critical,
	// nodata]. A healthy instance is then one short run, not 289 windows.
	Services map[string][][5]float64 `json:"services"`
}

// allHistory answers with every current instance's last 24 hours in one
// response, so that the dashboard draws all its charts from one request.
func (s *Server) allHistory(w http.ResponseWriter, r *http.Request) error {
	granularity, err := s.granularity(r)
	if err != nil {
		return err
	}
	now := s.Now()
	window := time.Duration(granularity) * time.Minute
	from := health.HistoryStart(now, window)
	recordings, err := s.store.Recordings(r.Context(), from, now)
	if err != nil {
		return err
	}
	resp := batchHistoryResponse{
		Granularity: granularity,
		Start:       from.UTC(),
		Windows:     health.WindowCount(now, window),
		Services:    make(map[string][][5]float64, len(recordings)),
	}
	for id, rec := range recordings {
		runs := health.Runs(rec, now, window)
		encoded := make([][5]float64, len(runs))
		for i, r := range runs {
			encoded[i] = [5]float64{float64(r.Count), r.Window.Passing, r.Window.Warning, r.Window.Critical, r.Window.NoData}
		}
		resp.Services[id] = encoded
	}
	writeJSON(w, http.StatusOK, resp)
	return nil
}

// granularity is the request's granularity parameter, or else the browser's
// saved setting.
func (s *Server) granularity(r *http.Request) (int, error) {
	if !r.URL.Query().Has("granularity") {
		return s.settings.Read(r).Display.HistoryGranularity, nil
	}
	raw := r.URL.Query().Get("granularity")
	minutes, err := strconv.Atoi(raw)
	if err != nil || !health.ValidGranularity(minutes) {
		return 0, badRequest("granularity: %q is not one of %s (minutes)", raw, joinInts(health.Granularities))
	}
	return minutes, nil
}
