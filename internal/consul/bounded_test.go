package consul

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/hashicorp/consul/api"
)

// capString runs src through the filter, in reads of chunk bytes so that
// every state crosses a read boundary somewhere.
func capString(t testing.TB, src string, max, outputMax, chunk int) []byte {
	r := io.NopCloser(iotest.OneByteReader(strings.NewReader(src)))
	if chunk > 1 {
		r = io.NopCloser(&chunkReader{s: src, n: chunk})
	}
	out, err := io.ReadAll(&stringCapper{body: r, max: max, outputMax: outputMax})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

type chunkReader struct {
	s string
	n int
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if r.s == "" {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), r.n)], r.s)
	r.s = r.s[n:]
	return n, nil
}

func TestStringCapper(t *testing.T) {
	for _, tc := range []struct {
		in   string
		max  int
		want string
	}{
		{`{"Out":"abcdef","n":1}`, 3, `{"Out":"abc","n":1}`},
		{`["abc"]`, 3, `["abc"]`},
		{`["ab\"cd"]`, 3, `["ab"]`},       // an escape is kept whole or not at all
		{`["a\"cd"]`, 3, `["a\""]`},       // it fits
		{`["a\u00e9b"]`, 5, `["a"]`},      // \u00e9 is 6 bytes
		{`["aé"]`, 2, `["a"]`},            // a UTF-8 sequence is never split
		{`["aé"]`, 3, `["aé"]`},           //
		{`["\ud83d\ude00x"]`, 11, `[""]`}, // a surrogate pair is one unit
		{`["\ud83d\ude00x"]`, 12, `["\ud83d\ude00"]`},
		{`["\ud83dx"]`, 6, `["\ud83d"]`}, // a lone half is kept as it came
		{`["\ud83d\n"]`, 7, `["\ud83d"]`},
		{`["\ud83d\u0041"]`, 12, `["\ud83d\u0041"]`},
		{`{"k\\ey":"v\\"} "x"`, 1, `{"k":"v"} "x"`},
		{`[1,true,null,{"a":[]}]`, 0, `[1,true,null,{"":[]}]`},
	} {
		for _, chunk := range []int{1, 3, 4096} {
			if got := capString(t, tc.in, tc.max, 0, chunk); string(got) != tc.want {
				t.Errorf("cap %d of %s (reads of %d) = %s, want %s", tc.max, tc.in, chunk, got, tc.want)
			}
		}
	}
}

// TestOutputCap checks that only the value of an "Output" key gets the
// output cap, and that a cut one ends with the marker.
func TestOutputCap(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`{"Output":"abcdefghijkl","Name":"abcdefghijkl"}`, `{"Output":"abcdefgh\udbff","Name":"abcdefghij"}`},
		{`{ "Output" : "abcdefgh" }`, `{ "Output" : "abcdefgh" }`}, // fits: no marker
		{`{"Output":"abcdefghi"}`, `{"Output":"abcdefgh\udbff"}`},
		{`["Output","abcdefghijkl"]`, `["Output","abcdefghij"]`}, // not a key
		{`{"Outputs":"abcdefghijkl"}`, `{"Outputs":"abcdefghij"}`},
		{`{"xOutput":"abcdefghijkl"}`, `{"xOutput":"abcdefghij"}`},
		{`{"Output":"a\nb\ncde\"fgh"}`, `{"Output":"a\nb\ncd\udbff"}`}, // escapes kept whole
	} {
		for _, chunk := range []int{1, 2, 4096} {
			if got := capString(t, tc.in, 10, 8, chunk); string(got) != tc.want {
				t.Errorf("%s (reads of %d) = %s, want %s", tc.in, chunk, got, tc.want)
			}
		}
	}
	var h healthCheck
	if err := json.Unmarshal([]byte(`{"Output":"ab\n\udbff"}`), &h); err != nil || h.Output != (output{"ab\n", true}) {
		t.Errorf("marked output read as %+v, %v", h.Output, err)
	}
	var plain healthCheck
	if err := json.Unmarshal([]byte(`{"Output":"ab\ufffd"}`), &plain); err != nil || plain.Output != (output{"ab\ufffd", false}) {
		t.Errorf("output read as %+v, %v", plain.Output, err)
	}
}

// FuzzStringCapper checks the filter against encoding/json: any valid JSON
// comes out as valid JSON with the same tokens, each string a prefix of its
// original, no longer than the cap in raw bytes, and the same when
// nothing needed cutting.
func FuzzStringCapper(f *testing.F) {
	for _, s := range []string{
		`{"Node":"n1","Output":"line\nline\t\"quoted\" \\ \/ \u00e9 \ud83d\ude00 é 😀","n":[1,2.5e3,-0,true,false,null]}`,
		`[{"a":{"b":["c","\ud800\udc00\ud800x\udc00"]}}]`,
		"\"\xff\xfe invalid \xe2\x82 utf8\"",
		` "" `,
	} {
		f.Add(s, 5)
	}
	f.Add(`{"Output":"abcdefghijkl\n\u00e9","x":{"Output":"\ud83d\ude00\ud83d\ude00"}}`, 7)
	f.Fuzz(func(t *testing.T, src string, max int) {
		if !json.Valid([]byte(src)) {
			return
		}
		max = int(uint(max) % 40)
		out := capString(t, src, max, 0, 1+max%7)
		if !json.Valid(out) {
			t.Fatalf("cap %d of %q gave invalid JSON %q", max, src, out)
		}
		want, got := json.NewDecoder(strings.NewReader(src)), json.NewDecoder(bytes.NewReader(out))
		for {
			wt, werr := want.Token()
			gt, gerr := got.Token()
			if errors.Is(werr, io.EOF) && errors.Is(gerr, io.EOF) {
				break
			}
			if werr != nil || gerr != nil {
				t.Fatalf("tokens: %v / %v in %q -> %q", werr, gerr, src, out)
			}
			ws, wok := wt.(string)
			gs, gok := gt.(string)
			switch {
			case wok != gok:
				t.Fatalf("token %v became %v", wt, gt)
			case wok && !strings.HasPrefix(ws, gs):
				t.Fatalf("string %q became %q, not a prefix", ws, gs)
			case !wok && wt != gt:
				t.Fatalf("token %v became %v", wt, gt)
			}
		}
		// With an output cap, "Output" values may end with the marker: the
		// answer stays valid JSON with the same tokens.
		marked := capString(t, src, max, 1+max/2, 1+max%5)
		if !json.Valid(marked) || sameKinds(src, marked) != nil {
			t.Fatalf("output cap %d of %q gave %q: %v", 1+max/2, src, marked, sameKinds(src, marked))
		}
		if fits := maxRawString(src) <= max; fits != (string(out) == src) {
			t.Fatalf("cap %d: %q became %q", max, src, out)
		}
		if maxRawString(string(out)) > max {
			t.Fatalf("cap %d: %q has a longer string", max, out)
		}
	})
}

// sameKinds reports a difference in the token kinds of two JSON texts.
func sameKinds(a string, b []byte) error {
	da, db := json.NewDecoder(strings.NewReader(a)), json.NewDecoder(bytes.NewReader(b))
	for {
		ta, ea := da.Token()
		tb, eb := db.Token()
		if errors.Is(ea, io.EOF) && errors.Is(eb, io.EOF) {
			return nil
		}
		if ea != nil || eb != nil {
			return fmt.Errorf("tokens: %v / %v", ea, eb)
		}
		if fmt.Sprintf("%T", ta) != fmt.Sprintf("%T", tb) {
			return fmt.Errorf("token %v became %v", ta, tb)
		}
	}
}

// maxRawString is the raw length of the longest string in valid JSON.
func maxRawString(s string) int {
	longest, n, in, esc := 0, 0, false, false
	for i := 0; i < len(s); i++ {
		b := s[i]
		switch {
		case !in:
			if b == '"' {
				in, n = true, 0
			}
		case esc:
			esc = false
			n++
		case b == '\\':
			esc = true
			n++
		case b == '"':
			in, longest = false, max(longest, n)
		default:
			n++
		}
	}
	return longest
}

// TestBoundedTransport checks that the client New builds cuts strings in
// what Consul sends, labelled JSON or not, and leaves error bodies alone.
func TestBoundedTransport(t *testing.T) {
	long := strings.Repeat("y", 100_000)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/error" {
			w.WriteHeader(http.StatusInternalServerError)
			fmt.Fprintf(w, `"%s"`, long)
			return
		}
		w.Header().Set("Content-Length", strconv.Itoa(2*len(long)+27))
		fmt.Fprintf(w, `[{"Name":"%s", "Output" :"%s"}]`, long, long)
	}))
	defer srv.Close()
	cfg := api.DefaultConfig()
	cfg.Address = srv.Listener.Addr().String()
	if _, err := New(cfg); err != nil {
		t.Fatal(err)
	}
	if _, ok := cfg.HttpClient.Transport.(boundedTransport); !ok {
		t.Fatalf("New left the transport %T", cfg.HttpClient.Transport)
	}
	get := func(path string) (int, string) {
		resp, err := cfg.HttpClient.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, string(b)
	}
	// Names are cut at StringCap, an output at its own cap with the marker.
	// White space outside strings is dropped.
	want := `[{"Name":"` + long[:StringCap] + `","Output":"` + long[:outputCap(DefaultCheckOutputMax)] + cutMarker + `"}]`
	if code, body := get("/"); code != 200 || body != want {
		t.Errorf("answer of %d B came as %d B", 2*len(long)+27, len(body))
	}
	// An error body is text, only its start is shown: it is cut, not filtered.
	if code, body := get("/error"); code != 500 || len(body) != errorBodyMax {
		t.Errorf("error body of %d B came as %d B, want its first %d B", len(long)+2, len(body), errorBodyMax)
	}
}
