package web

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/consul-monitor/consul-monitor/internal/health"
	"github.com/consul-monitor/consul-monitor/internal/store"
)

// Limits of GET /api/events' limit parameter.
const (
	DefaultEventsLimit = 100
	MaxEventsLimit     = 1000
)

// eventJSON is one event. A field that does not apply is null: instance
// and service for a node check (it counts for every instance on node),
// check and check_name for a (de)registration, from for a check first
// seen, to for a check removed, output when Consul gave none.
type eventJSON struct {
	At        time.Time `json:"at"`
	Kind      string    `json:"kind"`
	Instance  *string   `json:"instance"`
	Service   *string   `json:"service"`
	Node      string    `json:"node"`
	Check     *string   `json:"check"`
	CheckName *string   `json:"check_name"`
	From      *string   `json:"from"`
	To        *string   `json:"to"`
	Output    *string   `json:"output"`
	// OutputTruncated is set when output was cut to what is kept with
	// each change (health.EventOutputMax bytes).
	OutputTruncated bool `json:"output_truncated"`
}

type eventsResponse struct {
	Events []eventJSON `json:"events"`
	// Next continues the listing as cursor=, with the same filters; null
	// on the last page.
	Next *string `json:"next"`
}

// listEvents answers with recorded status changes and (de)registrations,
// newest first, a page at a time.
func (s *Server) listEvents(w http.ResponseWriter, r *http.Request) error {
	f, err := eventFilter(r)
	if err != nil {
		return err
	}
	page, err := s.store.Events(r.Context(), f)
	if err != nil {
		return err
	}
	resp := eventsResponse{Events: make([]eventJSON, len(page.Events))}
	for i, e := range page.Events {
		resp.Events[i] = eventJSON{
			At: e.At, Kind: string(e.Kind), Instance: orNull(e.Instance()), Service: orNull(e.Service), Node: e.Node,
			Check: orNull(e.CheckID), CheckName: orNull(e.CheckName),
			From: orNull(string(e.From)), To: orNull(string(e.To)),
			Output: orNull(e.Output), OutputTruncated: e.OutputTruncated,
		}
	}
	if page.Next != nil {
		next := page.Next.String()
		resp.Next = &next
	}
	writeJSON(w, http.StatusOK, resp)
	return nil
}

// eventFilter reads the request's parameters; an empty one is as good as
// absent. Each error names its parameter and what it takes.
func eventFilter(r *http.Request) (store.EventFilter, error) {
	q := r.URL.Query()
	f := store.EventFilter{Limit: DefaultEventsLimit, Service: q.Get("service")}
	var err error
	if f.Since, err = timeParam(q.Get("since"), "since"); err != nil {
		return f, err
	}
	if f.Until, err = timeParam(q.Get("until"), "until"); err != nil {
		return f, err
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && !f.Since.Before(f.Until) {
		return f, badRequest("since: %s is not before until (%s); events are those with since ≤ at < until",
			f.Since.Format(time.RFC3339Nano), f.Until.Format(time.RFC3339Nano))
	}
	if raw := q.Get("limit"); raw != "" {
		n, err := strconv.Atoi(raw)
		if err != nil || n < 1 || n > MaxEventsLimit {
			return f, badRequest("limit: %q is not a whole number from 1 to %d", truncate(raw, 100), MaxEventsLimit)
		}
		f.Limit = n
	}
	if raw := q.Get("instance"); raw != "" {
		if _, _, ok := health.ParseInstanceID(raw); !ok {
			return f, badRequest("instance: %q is not an instance id (node/service ID, each with %% and / escaped as %%25 and %%2F)", truncate(raw, 100))
		}
		f.Instance = raw
	}
	if raw := q.Get("status"); raw != "" {
		for _, part := range strings.Split(raw, ",") {
			st := health.Status(strings.TrimSpace(part))
			if !slices.Contains(health.EventStatuses, st) {
				return f, badRequest("status: %q is not one of %s (a comma-separated list is any of them)", truncate(part, 100), joinStatuses(health.EventStatuses))
			}
			if !slices.Contains(f.Statuses, st) {
				f.Statuses = append(f.Statuses, st)
			}
		}
	}
	if raw := q.Get("cursor"); raw != "" {
		key, err := store.ParseEventKey(raw)
		if err != nil {
			return f, badRequest("cursor: %v; use the next value of the previous page", err)
		}
		f.After = &key
	}
	return f, nil
}

func timeParam(raw, name string) (time.Time, error) {
	if raw == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, raw)
	if err != nil {
		return time.Time{}, badRequest("%s: %q is not a time; RFC 3339 required, e.g. 2026-11-24T12:00:00Z", name, truncate(raw, 100))
	}
	return t, nil
}

func joinStatuses(statuses []health.Status) string {
	parts := make([]string, len(statuses))
	for i, s := range statuses {
		parts[i] = string(s)
	}
	return strings.Join(parts, ", ")
}

// orNull is s, or null when it is empty.
func orNull(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}
