package health

import "testing"

// URLs that Go's parser takes but a browser's (WHATWG) refuses: as links
// they lead nowhere, which the API's url must never be. `new URL()` throws on
// each of these in Chromium and Node.
func TestURLThatLeadsNowhereIsNoLink(t *testing.T) {
	for _, tc := range []struct {
		name string
		inst Instance
	}{
		{"meta url with no host before the port", Instance{Meta: map[string]string{"url": "http://:80/"}}},
		{"meta url with '<' in the host", Instance{Meta: map[string]string{"url": "http://a<b.example/"}}},
		{"meta url with '>' in the host", Instance{Meta: map[string]string{"url": "http://a>b.example/"}}},
		{"meta url with a line separator in the host", Instance{Meta: map[string]string{"url": "http://%E2%80%A8x.example/"}}},
		{"meta url with a zero-width space in the host", Instance{Meta: map[string]string{"url": "http://good%E2%80%8B.example/"}}},
		{"address with '<'", Instance{Address: "a<b", Port: 8080}},
		{"address with a no-break space", Instance{Address: "a\u00a0b", Port: 8080}},
	} {
		if got := URL(tc.inst); got != "" {
			t.Errorf("%s: URL = %q, want no link", tc.name, got)
		}
	}
	// IDN hosts and underscores stay links.
	for _, raw := range []string{"http://bücher.example/", "http://a_b.internal:8080/x"} {
		if got := URL(Instance{Meta: map[string]string{"url": raw}}); got == "" {
			t.Errorf("%s: no link, want one", raw)
		}
	}
}
