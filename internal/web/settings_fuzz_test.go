package web

import (
	"bytes"
	"crypto/hmac"
	"encoding/base64"
	"encoding/json"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/consul-monitor/consul-monitor/internal/health"
)

// The seeds run in every go test; scripts/fuzz explores from them.

var fuzzCookie = settingsCookie{key: []byte("0123456789abcdef0123456789abcdef")}

// checkSettings fails unless s holds only values the server offers, with
// the server's own option lists.
func checkSettings(t *testing.T, s Settings) {
	t.Helper()
	if !slices.Contains(RefreshIntervals, s.AutoRefresh.Interval) {
		t.Errorf("interval %d is not offered", s.AutoRefresh.Interval)
	}
	if !health.ValidGranularity(s.Display.HistoryGranularity) {
		t.Errorf("granularity %d is not offered", s.Display.HistoryGranularity)
	}
	d := DefaultSettings()
	if !slices.Equal(s.AutoRefresh.Options, d.AutoRefresh.Options) || !slices.Equal(s.Display.GranularityOptions, d.Display.GranularityOptions) {
		t.Errorf("option lists changed: %+v", s)
	}
}

func FuzzApplySettingsPatch(f *testing.F) {
	for _, seed := range []string{
		`{}`, `{"autoRefresh":{"enabled":true}}`, `{"autoRefresh":{"interval":30}}`, `{"display":{"historyGranularity":5}}`,
		`{"autoRefresh":{"enabled":true,"interval":120,"options":[1,2]},"display":{"historyGranularity":30,"granularityOptions":[7]}}`,
		`{"autoRefresh":null,"display":{"historyGranularity":null}}`,
		`{"autoRefresh":{"interval":45}}`, `{"display":{"historyGranularity":10}}`, `{"autoRefresh":{"enabled":"yes"}}`,
		`{"autoRefresh":{"interval":60.5}}`, `{"autoRefresh":{"interval":1e400}}`, `{"autoRefresh":{"interval":-9223372036854775808}}`,
		`{"display":5}`, `{"autoRefresh":{"enabled":true,"colour":"red"}}`, `{"AUTOREFRESH":{"Interval":600}}`,
		`{"autoRefresh":{"interval":30},"autoRefresh":{"enabled":true}}`,
		`null`, ` null`, `[1,2]`, `5`, `"x"`, `true`, ``, `{`, `{} {}`, `{}x`, "\xef\xbb\xbf{}", "{\"display\":{\"historyGranularity\":15}}\n",
	} {
		f.Add([]byte(seed))
	}
	custom := DefaultSettings()
	custom.AutoRefresh.Enabled, custom.AutoRefresh.Interval, custom.Display.HistoryGranularity = true, 300, 60
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, from := range []Settings{DefaultSettings(), custom} {
			got, err := ApplySettingsPatch(from, body)
			if err != nil {
				if !reflect.DeepEqual(got, from) {
					t.Fatalf("%q: settings changed on error %v: %+v", body, err, got)
				}
				if err.Error() == "" {
					t.Fatalf("%q: empty error", body)
				}
				continue
			}
			checkSettings(t, got)
			// Only an object is a patch.
			if trimmed := bytes.TrimLeft(body, " \t\r\n"); len(trimmed) == 0 || trimmed[0] != '{' || !json.Valid(body) {
				t.Fatalf("%q accepted: not a JSON object", body)
			}
			// A patch says what to set, so applying it twice changes nothing more.
			again, err := ApplySettingsPatch(got, body)
			if err != nil || !reflect.DeepEqual(again, got) {
				t.Fatalf("%q applied twice: %+v, %v; once: %+v", body, again, err, got)
			}
		}
	})
}

// FuzzSettingsCookieValue reads arbitrary cookie values: whatever a
// browser sends, the settings are valid, and without the key's signature
// they are the defaults.
func FuzzSettingsCookieValue(f *testing.F) {
	valid := signed(fuzzCookie, []byte(`{"v":1,"e":true,"i":600,"g":5}`))
	for _, seed := range []string{
		valid, valid[:len(valid)-1], valid + "A", "." + valid, valid + ".", "", ".", "..", "%%%.!!!", "eyJ2IjoxfQ",
		"eyJ2IjoxLCJlIjp0cnVlLCJpIjo2MDAsImciOjV9.", `"quoted.value"`, "a b.c", "x.\x00",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, value string) {
		r := httptest.NewRequest("GET", "/api/config", nil)
		// The raw header, so that values a browser would never store still
		// reach the decoder as the cookie parser passes them.
		r.Header.Set("Cookie", settingsCookieName+"="+value)
		got := fuzzCookie.Read(r)
		checkSettings(t, got)
		if c, err := r.Cookie(settingsCookieName); err == nil && c.Value == valid {
			return
		}
		// Anything else that reads as chosen settings must carry a valid
		// signature of its own payload.
		if !reflect.DeepEqual(got, DefaultSettings()) {
			c, _ := r.Cookie(settingsCookieName)
			if !validlySigned(fuzzCookie, c.Value) {
				t.Fatalf("unsigned cookie %q read as %+v", value, got)
			}
		}
	})
}

// validlySigned tells whether value's signature is the key's MAC of its
// payload as sent.
func validlySigned(c settingsCookie, value string) bool {
	payload, sig, ok := strings.Cut(value, ".")
	if !ok {
		return false
	}
	got, err := base64.RawURLEncoding.DecodeString(sig)
	return err == nil && hmac.Equal(got, c.sign([]byte(payload)))
}

// FuzzSettingsCookiePayload signs arbitrary payloads with the server's key,
// as if the key had leaked to a buggy writer: a payload is read back
// exactly when it is a current-version record of offered values, and the
// defaults come otherwise.
func FuzzSettingsCookiePayload(f *testing.F) {
	for _, seed := range []string{
		`{"v":1,"e":true,"i":600,"g":5}`, `{"v":1,"e":false,"i":30,"g":60}`, `{"v":1,"i":60,"g":15}`,
		`{"v":2,"e":true,"i":600,"g":5}`, `{"v":0,"e":true,"i":600,"g":5}`, `{"v":1,"e":true,"i":45,"g":5}`,
		`{"v":1,"e":true,"i":600,"g":7}`, `{"v":1,"e":true,"i":600,"g":-5}`, `{"v":1.5,"i":600,"g":5}`,
		`{"V":1,"E":true,"I":120,"G":30}`, `{"v":1,"i":600,"g":5,"x":1}`, `{"v":1,"i":600,"g":5}{}`,
		`null`, `[]`, `1`, `"s"`, ``, `{`, "\xff",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		got := readCookie(fuzzCookie, signed(fuzzCookie, raw))
		checkSettings(t, got)
		want := DefaultSettings()
		var stored storedSettings
		if json.Unmarshal(raw, &stored) == nil && stored.Version == settingsCookieVersion &&
			slices.Contains(RefreshIntervals, stored.Interval) && health.ValidGranularity(stored.Granularity) {
			want.AutoRefresh.Enabled, want.AutoRefresh.Interval, want.Display.HistoryGranularity = stored.Enabled, stored.Interval, stored.Granularity
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("payload %q read as %+v, want %+v", raw, got, want)
		}
		// What was read, written again, reads back the same.
		rec := httptest.NewRecorder()
		fuzzCookie.Write(rec, httptest.NewRequest("POST", "/", nil), got)
		if back := readCookie(fuzzCookie, rec.Result().Cookies()[0].Value); !reflect.DeepEqual(back, got) {
			t.Fatalf("round trip of %+v gave %+v", got, back)
		}
	})
}
