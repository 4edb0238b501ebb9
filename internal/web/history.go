package web

import (
	"net/http"
	"strconv"
	"time"

	"github.com/consul-monitor/consul-monitor/internal/health"
)

type historyResponse struct {
	ServiceID   string `json:"service_id"`
	Granularity int    `json:"granularity"`
	// Until is where the history ends: the last certified moment while
	// Consul is being watched, else now.
	Until time.Time    `json:"until"`
	Data  []windowJSON `json:"data"`
}

type windowJSON struct {
	Timestamp time.Time `json:"timestamp"`
	Passing   float64   `json:"passing"`
	Warning   float64   `json:"warning"`
	Critical  float64   `json:"critical"`
	NoData    float64   `json:"nodata"`
	// The exact times, so that a failure too short to show in a rounded
	// share is still told to the millisecond.
	PassingMs  int64 `json:"passing_ms"`
	WarningMs  int64 `json:"warning_ms"`
	CriticalMs int64 `json:"critical_ms"`
	NoDataMs   int64 `json:"nodata_ms"`
}

// historyEnd is where the history asked for now ends, to the millisecond,
// which is what the database keeps: exact times are then whole milliseconds.
func (s *Server) historyEnd() time.Time {
	return s.store.HistoryEnd(s.Now()).Truncate(time.Millisecond).UTC()
}

// serviceHistory answers with one instance's last 24 hours in windows. It
// answers for an instance that has left the catalog too.
func (s *Server) serviceHistory(w http.ResponseWriter, r *http.Request) error {
	granularity, err := s.granularity(r)
	if err != nil {
		return err
	}
	id := r.PathValue("id")
	until := s.historyEnd()
	window := time.Duration(granularity) * time.Minute
	rec, err := s.store.Recording(r.Context(), id, health.HistoryStart(until, window), until)
	if err != nil {
		return err
	}
	windows := health.Windows(rec, until, window)
	resp := historyResponse{ServiceID: id, Granularity: granularity, Until: until, Data: make([]windowJSON, len(windows))}
	for i, win := range windows {
		resp.Data[i] = windowJSON{
			Timestamp: win.Start, Passing: win.Passing, Warning: win.Warning, Critical: win.Critical, NoData: win.NoData,
			PassingMs: win.PassingTime.Milliseconds(), WarningMs: win.WarningTime.Milliseconds(),
			CriticalMs: win.CriticalTime.Milliseconds(), NoDataMs: win.NoDataTime.Milliseconds(),
		}
	}
	writeJSON(w, http.StatusOK, resp)
	return nil
}

// runJSON is a run of identical windows: [count, passing, warning,
// critical, nodata, passing_ms, warning_ms, critical_ms, nodata_ms].
type runJSON [9]float64

type goneJSON struct {
	Name           string    `json:"name"`
	Node           string    `json:"node"`
	ServiceID      string    `json:"service_id"`
	DeregisteredAt time.Time `json:"deregistered_at"`
}

type batchHistoryResponse struct {
	Granularity int       `json:"granularity"`
	Start       time.Time `json:"start"`
	Windows     int       `json:"windows"`
	Until       time.Time `json:"until"`
	// Services maps each instance registered at some time in the history,
	// gone ones included, to its windows, oldest first, as runs. A healthy
	// instance is then one short run, not 289 windows.
	Services map[string][]runJSON `json:"services"`
	// Gone names the instances in Services that are no longer registered.
	Gone map[string]goneJSON `json:"gone"`
	// Groups maps each service name to its runs: the share of
	// instance-time in each status, counting only the instances registered
	// at the time.
	Groups map[string][]runJSON `json:"groups"`
}

// allHistory answers with the last 24 hours of every instance registered
// in them, and of every service, in one response, so that the dashboard
// draws all its charts from one request.
func (s *Server) allHistory(w http.ResponseWriter, r *http.Request) error {
	granularity, err := s.granularity(r)
	if err != nil {
		return err
	}
	until := s.historyEnd()
	window := time.Duration(granularity) * time.Minute
	from := health.HistoryStart(until, window)
	recordings, err := s.store.Recordings(r.Context(), from, until)
	if err != nil {
		return err
	}
	resp := batchHistoryResponse{
		Granularity: granularity,
		Start:       from.UTC(),
		Windows:     health.WindowCount(until, window),
		Until:       until,
		Services:    make(map[string][]runJSON, len(recordings)),
		Gone:        map[string]goneJSON{},
		Groups:      map[string][]runJSON{},
	}
	byService := map[string][][]health.Run{}
	for id, rec := range recordings {
		runs := health.Runs(rec.Recording, until, window)
		resp.Services[id] = encodeRuns(runs)
		byService[rec.Name] = append(byService[rec.Name], runs)
		if rec.Gone {
			resp.Gone[id] = goneJSON{Name: rec.Name, Node: rec.Node, ServiceID: rec.ServiceID, DeregisteredAt: rec.DeregisteredAt}
		}
	}
	for name, instances := range byService {
		resp.Groups[name] = encodeRuns(health.ServiceRuns(instances, window))
	}
	writeJSON(w, http.StatusOK, resp)
	return nil
}

func encodeRuns(runs []health.Run) []runJSON {
	out := make([]runJSON, len(runs))
	for i, r := range runs {
		w := r.Window
		out[i] = runJSON{float64(r.Count), w.Passing, w.Warning, w.Critical, w.NoData,
			float64(w.PassingTime.Milliseconds()), float64(w.WarningTime.Milliseconds()),
			float64(w.CriticalTime.Milliseconds()), float64(w.NoDataTime.Milliseconds())}
	}
	return out
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
