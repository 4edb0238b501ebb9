package web

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/consul-monitor/consul-monitor/internal/health"
)

// Settings are one browser's dashboard preferences, in the shape the
// dashboard reads and writes. The option lists are the server's and are
// read-only.
type Settings struct {
	AutoRefresh AutoRefresh `json:"autoRefresh"`
	Display     Display     `json:"display"`
}

// AutoRefresh is the dashboard's refresh timer.
type AutoRefresh struct {
	Enabled bool `json:"enabled"`
	// Interval is in seconds.
	Interval int   `json:"interval"`
	Options  []int `json:"options"`
}

// Display holds how history is drawn.
type Display struct {
	// HistoryGranularity is the history window length in minutes.
	HistoryGranularity int   `json:"historyGranularity"`
	GranularityOptions []int `json:"granularityOptions"`
}

// RefreshIntervals are the auto-refresh intervals, in seconds, a browser may choose.
var RefreshIntervals = []int{30, 60, 120, 300, 600}

// DefaultSettings are what a browser without a valid cookie gets.
func DefaultSettings() Settings {
	return Settings{
		AutoRefresh: AutoRefresh{Enabled: false, Interval: 60, Options: slices.Clone(RefreshIntervals)},
		Display:     Display{HistoryGranularity: health.DefaultGranularity, GranularityOptions: slices.Clone(health.Granularities)},
	}
}

// settingsPatch is a POST body: any part may be left out. The option lists
// are accepted, so a client may send back what it read, and ignored.
type settingsPatch struct {
	AutoRefresh *struct {
		Enabled  *bool           `json:"enabled"`
		Interval *int            `json:"interval"`
		Options  json.RawMessage `json:"options"`
	} `json:"autoRefresh"`
	Display *struct {
		HistoryGranularity *int            `json:"historyGranularity"`
		GranularityOptions json.RawMessage `json:"granularityOptions"`
	} `json:"display"`
}

// ApplySettingsPatch returns current changed by the JSON document body.
// The error names the field at fault; on error nothing is changed.
func ApplySettingsPatch(current Settings, body []byte) (Settings, error) {
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) == 0 {
		return current, errors.New("request body must be a JSON object")
	}
	// Decoding null into a struct succeeds and changes nothing; it must
	// not pass for an empty object.
	if kind := nonObjectKind(trimmed[0]); kind != "" {
		return current, fmt.Errorf("request body must be a JSON object, not %s", kind)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	var patch settingsPatch
	if err := dec.Decode(&patch); err != nil {
		return current, describeJSONError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return current, errors.New("malformed JSON: unexpected data after the object")
	}
	next := current
	if p := patch.AutoRefresh; p != nil {
		if p.Enabled != nil {
			next.AutoRefresh.Enabled = *p.Enabled
		}
		if p.Interval != nil {
			if !slices.Contains(RefreshIntervals, *p.Interval) {
				return current, fmt.Errorf("autoRefresh.interval: %d is not one of %s", *p.Interval, joinInts(RefreshIntervals))
			}
			next.AutoRefresh.Interval = *p.Interval
		}
	}
	if p := patch.Display; p != nil && p.HistoryGranularity != nil {
		if !health.ValidGranularity(*p.HistoryGranularity) {
			return current, fmt.Errorf("display.historyGranularity: %d is not one of %s", *p.HistoryGranularity, joinInts(health.Granularities))
		}
		next.Display.HistoryGranularity = *p.HistoryGranularity
	}
	return next, nil
}

// nonObjectKind names the JSON value other than an object that starts with
// c, or is "" for an object or for what is not JSON, left to the decoder.
func nonObjectKind(c byte) string {
	switch {
	case c == '[':
		return "a JSON array"
	case c == '"':
		return "a JSON string"
	case c == 'n':
		return "JSON null"
	case c == 't' || c == 'f':
		return "a JSON boolean"
	case c == '-' || c >= '0' && c <= '9':
		return "a JSON number"
	}
	return ""
}

func describeJSONError(err error) error {
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case errors.As(err, &typeErr) && typeErr.Field != "":
		return fmt.Errorf("%s: must be a %s, not a JSON %s", typeErr.Field, jsonTypeName(typeErr.Type.Kind().String()), typeErr.Value)
	case errors.As(err, &typeErr):
		return fmt.Errorf("request body must be a JSON object, not a JSON %s", typeErr.Value)
	case errors.As(err, &syntaxErr), errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("malformed JSON: %v", err)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return fmt.Errorf("unknown field %s", strings.TrimPrefix(err.Error(), "json: unknown field "))
	}
	return fmt.Errorf("malformed JSON: %v", err)
}

func jsonTypeName(kind string) string {
	switch kind {
	case "bool":
		return "boolean"
	case "int", "int64":
		return "whole number"
	case "struct", "ptr":
		return "object"
	}
	return kind
}

func joinInts(v []int) string {
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ", ")
}

// settingsCookie keeps Settings in a cookie signed with HMAC-SHA256, so the
// server stores nothing per browser and a browser cannot forge values.
type settingsCookie struct {
	key []byte
}

const (
	settingsCookieName   = "consul_monitor_settings"
	settingsCookieMaxAge = 365 * 24 * time.Hour
	// settingsCookieVersion changes when the stored shape does, which turns
	// older cookies into defaults instead of misread values.
	settingsCookieVersion = 1
)

// storedSettings is the cookie's payload: only what a browser chose.
type storedSettings struct {
	Version     int  `json:"v"`
	Enabled     bool `json:"e"`
	Interval    int  `json:"i"`
	Granularity int  `json:"g"`
}

// Read returns the request's settings. A missing, tampered, malformed or
// stale cookie gives the defaults, never an error.
func (c settingsCookie) Read(r *http.Request) Settings {
	defaults := DefaultSettings()
	cookie, err := r.Cookie(settingsCookieName)
	if err != nil {
		return defaults
	}
	payload, sig, ok := strings.Cut(cookie.Value, ".")
	if !ok {
		return defaults
	}
	gotSig, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil || !hmac.Equal(gotSig, c.sign([]byte(payload))) {
		return defaults
	}
	raw, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil {
		return defaults
	}
	var stored storedSettings
	if json.Unmarshal(raw, &stored) != nil || stored.Version != settingsCookieVersion ||
		!slices.Contains(RefreshIntervals, stored.Interval) || !health.ValidGranularity(stored.Granularity) {
		return defaults
	}
	s := defaults
	s.AutoRefresh.Enabled = stored.Enabled
	s.AutoRefresh.Interval = stored.Interval
	s.Display.HistoryGranularity = stored.Granularity
	return s
}

// Write sets the cookie for s on the response.
func (c settingsCookie) Write(w http.ResponseWriter, r *http.Request, s Settings) {
	raw, _ := json.Marshal(storedSettings{
		Version:     settingsCookieVersion,
		Enabled:     s.AutoRefresh.Enabled,
		Interval:    s.AutoRefresh.Interval,
		Granularity: s.Display.HistoryGranularity,
	})
	payload := base64.RawURLEncoding.EncodeToString(raw)
	http.SetCookie(w, &http.Cookie{
		Name:     settingsCookieName,
		Value:    payload + "." + base64.RawURLEncoding.EncodeToString(c.sign([]byte(payload))),
		Path:     "/",
		MaxAge:   int(settingsCookieMaxAge / time.Second),
		HttpOnly: true,
		SameSite: http.SameSiteLaxMode,
		Secure:   r.TLS != nil,
	})
}

func (c settingsCookie) sign(payload []byte) []byte {
	mac := hmac.New(sha256.New, c.key)
	mac.Write([]byte(settingsCookieName + "\x00"))
	mac.Write(payload)
	return mac.Sum(nil)
}
