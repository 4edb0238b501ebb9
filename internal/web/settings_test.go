package web

import (
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
)

func TestApplySettingsPatch(t *testing.T) {
	defaults := DefaultSettings()
	custom := defaults
	custom.AutoRefresh.Enabled = true
	custom.AutoRefresh.Interval = 300
	custom.Display.HistoryGranularity = 60

	valid := []struct {
		name string
		from Settings
		body string
		want func(*Settings)
	}{
		{"enable only", defaults, `{"autoRefresh":{"enabled":true}}`, func(s *Settings) { s.AutoRefresh.Enabled = true }},
		{"interval only", custom, `{"autoRefresh":{"interval":30}}`, func(s *Settings) { s.AutoRefresh.Interval = 30 }},
		{"granularity only", custom, `{"display":{"historyGranularity":5}}`, func(s *Settings) { s.Display.HistoryGranularity = 5 }},
		{"empty object changes nothing", custom, `{}`, func(*Settings) {}},
		{"nulls change nothing", custom, `{"autoRefresh":null,"display":{"historyGranularity":null}}`, func(*Settings) {}},
		{"the whole GET shape back, option lists ignored", defaults,
			`{"autoRefresh":{"enabled":true,"interval":120,"options":[1,2]},"display":{"historyGranularity":30,"granularityOptions":[7]}}`,
			func(s *Settings) {
				s.AutoRefresh.Enabled, s.AutoRefresh.Interval, s.Display.HistoryGranularity = true, 120, 30
			}},
	}
	for _, tt := range valid {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ApplySettingsPatch(tt.from, []byte(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			want := tt.from
			tt.want(&want)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("got %+v, want %+v", got, want)
			}
		})
	}

	invalid := []struct {
		name, body, errHas string
	}{
		{"interval outside the options", `{"autoRefresh":{"interval":45}}`, "autoRefresh.interval: 45 is not one of 30, 60, 120, 300, 600"},
		{"granularity outside the options", `{"display":{"historyGranularity":10}}`, "display.historyGranularity: 10 is not one of 5, 15, 30, 60"},
		{"enabled as a string", `{"autoRefresh":{"enabled":"yes"}}`, "autoRefresh.enabled: must be a boolean"},
		{"interval as a string", `{"autoRefresh":{"interval":"60"}}`, "autoRefresh.interval: must be a whole number"},
		{"interval as a fraction", `{"autoRefresh":{"interval":60.5}}`, "autoRefresh.interval"},
		{"section as a number", `{"display":5}`, "display: must be a"},
		{"unknown field", `{"autoRefresh":{"enabled":true,"colour":"red"}}`, `unknown field "colour"`},
		{"array body", `[1,2]`, "must be a JSON object"},
		{"malformed", `{"autoRefresh":`, "malformed JSON"},
		{"trailing data", `{} {}`, "malformed JSON"},
		{"empty body", ``, "must be a JSON object"},
		// Valid enabled, invalid interval: nothing may change.
		{"partly valid", `{"autoRefresh":{"enabled":true,"interval":7}}`, "autoRefresh.interval"},
	}
	for _, tt := range invalid {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ApplySettingsPatch(custom, []byte(tt.body))
			if err == nil || !strings.Contains(err.Error(), tt.errHas) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.errHas)
			}
			if !reflect.DeepEqual(got, custom) {
				t.Errorf("settings changed on error: %+v", got)
			}
		})
	}
}

func TestSettingsCookie(t *testing.T) {
	c := settingsCookie{key: []byte("0123456789abcdef0123456789abcdef")}
	chosen := DefaultSettings()
	chosen.AutoRefresh.Enabled = true
	chosen.AutoRefresh.Interval = 600
	chosen.Display.HistoryGranularity = 5

	rec := httptest.NewRecorder()
	c.Write(rec, httptest.NewRequest("POST", "/api/config", nil), chosen)
	cookie := rec.Result().Cookies()[0]
	if !cookie.HttpOnly || cookie.SameSite != http.SameSiteLaxMode || cookie.MaxAge != 365*24*3600 || cookie.Path != "/" {
		t.Errorf("cookie attributes: %+v", cookie)
	}

	read := func(value string) Settings {
		r := httptest.NewRequest("GET", "/api/config", nil)
		r.AddCookie(&http.Cookie{Name: settingsCookieName, Value: value})
		return c.Read(r)
	}
	if got := read(cookie.Value); !reflect.DeepEqual(got, chosen) {
		t.Errorf("round trip: got %+v, want %+v", got, chosen)
	}

	payload, sig, _ := strings.Cut(cookie.Value, ".")
	other := settingsCookie{key: []byte("another key entirely, 32 bytes!!")}
	rec = httptest.NewRecorder()
	other.Write(rec, httptest.NewRequest("POST", "/", nil), chosen)
	for name, value := range map[string]string{
		"tampered payload":      strings.Replace(payload, "e", "f", 1) + "." + sig,
		"signed by another key": rec.Result().Cookies()[0].Value,
		"no signature":          payload,
		"garbage":               "%%%.!!!",
		"empty":                 "",
	} {
		if got := read(value); !reflect.DeepEqual(got, DefaultSettings()) {
			t.Errorf("%s: got %+v, want defaults", name, got)
		}
	}

	// A correctly signed cookie whose values are no longer offered (stale).
	stale := chosen
	stale.AutoRefresh.Interval = 45
	rec = httptest.NewRecorder()
	c.Write(rec, httptest.NewRequest("POST", "/", nil), stale)
	if got := read(rec.Result().Cookies()[0].Value); !reflect.DeepEqual(got, DefaultSettings()) {
		t.Errorf("stale cookie: got %+v, want defaults", got)
	}
}

// signed returns a cookie value holding raw as its payload, signed with
// c's key: what the server would accept as its own.
func signed(c settingsCookie, raw []byte) string {
	payload := base64.RawURLEncoding.EncodeToString(raw)
	return payload + "." + base64.RawURLEncoding.EncodeToString(c.sign([]byte(payload)))
}

func readCookie(c settingsCookie, value string) Settings {
	r := httptest.NewRequest("GET", "/api/config", nil)
	r.AddCookie(&http.Cookie{Name: settingsCookieName, Value: value})
	return c.Read(r)
}

// A validly signed cookie is trusted for who wrote it, not for what it
// holds: a cookie from another version, or with a value no longer offered,
// gives the defaults.
func TestSignedCookieWithBadValuesGivesDefaults(t *testing.T) {
	c := settingsCookie{key: []byte("0123456789abcdef0123456789abcdef")}
	chosen := DefaultSettings()
	chosen.AutoRefresh.Enabled = true
	chosen.AutoRefresh.Interval = 300
	chosen.Display.HistoryGranularity = 60
	// The control: the same payload shape, all valid, is read back.
	if got := readCookie(c, signed(c, []byte(`{"v":1,"e":true,"i":300,"g":60}`))); !reflect.DeepEqual(got, chosen) {
		t.Fatalf("valid payload: got %+v, want %+v", got, chosen)
	}
	for name, raw := range map[string]string{
		"older version":           `{"v":0,"e":true,"i":300,"g":60}`,
		"newer version":           `{"v":2,"e":true,"i":300,"g":60}`,
		"no version":              `{"e":true,"i":300,"g":60}`,
		"granularity not offered": `{"v":1,"e":true,"i":300,"g":7}`,
		"granularity zero":        `{"v":1,"e":true,"i":300,"g":0}`,
		"granularity negative":    `{"v":1,"e":true,"i":300,"g":-60}`,
		"no granularity":          `{"v":1,"e":true,"i":300}`,
		"interval not offered":    `{"v":1,"e":true,"i":45,"g":60}`,
		"interval zero":           `{"v":1,"e":true,"i":0,"g":60}`,
		"no interval":             `{"v":1,"e":true,"g":60}`,
		"granularity a string":    `{"v":1,"e":true,"i":300,"g":"60"}`,
		"null":                    `null`,
		"array":                   `[1,true,300,60]`,
		"not JSON":                `v=1;e=1`,
	} {
		if got := readCookie(c, signed(c, []byte(raw))); !reflect.DeepEqual(got, DefaultSettings()) {
			t.Errorf("%s: got %+v, want defaults", name, got)
		}
	}
	// Write stamps the current version, so a cookie it wrote reads back.
	rec := httptest.NewRecorder()
	c.Write(rec, httptest.NewRequest("POST", "/", nil), chosen)
	payload, _, _ := strings.Cut(rec.Result().Cookies()[0].Value, ".")
	raw, _ := base64.RawURLEncoding.DecodeString(payload)
	if !strings.Contains(string(raw), `"v":1`) || settingsCookieVersion != 1 {
		t.Errorf("written payload %s, version constant %d: a new version needs these tests revisited", raw, settingsCookieVersion)
	}
}

// Secure only over TLS: a wall display served over plain HTTP must get its
// cookie back, and one behind TLS must never send it in the clear.
func TestSettingsCookieSecureOnlyOverTLS(t *testing.T) {
	c := settingsCookie{key: []byte("k")}
	for _, tls := range []bool{false, true} {
		r := httptest.NewRequest("POST", "/api/config", nil)
		if tls {
			r = httptest.NewRequest("POST", "https://monitor.example/api/config", nil)
		}
		rec := httptest.NewRecorder()
		c.Write(rec, r, DefaultSettings())
		if got := rec.Result().Cookies()[0].Secure; got != tls {
			t.Errorf("request over TLS %v: cookie Secure %v", tls, got)
		}
	}
}
