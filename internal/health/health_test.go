package health

import (
	"testing"
)

func TestInstanceStatus(t *testing.T) {
	check := func(id string, s Status) Check { return Check{CheckID: id, Status: s} }
	tests := []struct {
		name   string
		checks []Check
		want   Status
	}{
		{"no checks", nil, Unknown},
		{"all passing", []Check{check("a", Passing), check("b", Passing)}, Passing},
		{"warning beats passing", []Check{check("a", Passing), check("b", Warning)}, Warning},
		{"critical beats warning", []Check{check("a", Critical), check("b", Warning)}, Critical},
		{"node check counts like a service check", []Check{check("svc", Passing), {CheckID: "serfHealth", Status: Critical}}, Critical},
		{"service maintenance", []Check{check("a", Passing), check("_service_maintenance:web-1", Critical)}, Maintenance},
		{"node maintenance wins over critical", []Check{check("a", Critical), check("_node_maintenance", Critical)}, Maintenance},
		{"a check merely named like maintenance is not", []Check{check("my_node_maintenance", Warning)}, Warning},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := InstanceStatus(tt.checks); got != tt.want {
				t.Errorf("InstanceStatus = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestParseCheckStatus(t *testing.T) {
	for in, want := range map[string]Status{
		"passing": Passing, "warning": Warning, "critical": Critical, "maintenance": Maintenance,
		"": Critical, "PASSING": Critical, "degraded": Critical,
	} {
		if got := ParseCheckStatus(in); got != want {
			t.Errorf("ParseCheckStatus(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestEvaluate(t *testing.T) {
	snap := Snapshot{
		Instances: []Instance{
			{Node: "n2", ServiceID: "web-1", Name: "web"},
			{Node: "n1", ServiceID: "web-1", Name: "web"},
			{Node: "n1", ServiceID: "db", Name: "api"},
		},
		Checks: []Check{
			{Node: "n1", CheckID: "serfHealth", Status: Passing},
			{Node: "n2", CheckID: "serfHealth", Status: Critical},
			{Node: "n1", CheckID: "c1", ServiceID: "web-1", Status: Warning},
			{Node: "n2", CheckID: "c1", ServiceID: "web-1", Status: Passing},
			{Node: "n3", CheckID: "c9", ServiceID: "gone", Status: Critical},
		},
	}
	ev := Evaluate(snap)
	got := ev.Instances
	want := []struct {
		id     string
		status Status
		checks int
	}{
		{"n1/db", Passing, 0},     // only its node's check
		{"n1/web-1", Warning, 1},  // own warning beats passing node
		{"n2/web-1", Critical, 1}, // critical node makes it critical
	}
	if len(got) != len(want) {
		t.Fatalf("got %d instances, want %d", len(got), len(want))
	}
	for i, w := range want {
		if got[i].ID() != w.id || got[i].Status != w.status || len(got[i].Checks) != w.checks {
			t.Errorf("instance %d = %s %s with %d checks, want %s %s with %d", i, got[i].ID(), got[i].Status, len(got[i].Checks), w.id, w.status, w.checks)
		}
	}
	// Node checks are held once per node that runs an instance, never in
	// an instance's own checks.
	if len(ev.NodeChecks) != 2 || len(ev.NodeChecks["n1"]) != 1 || ev.NodeChecks["n2"][0].Status != Critical {
		t.Errorf("node checks %+v", ev.NodeChecks)
	}
	if got[1].Checks[0].CheckID != "c1" {
		t.Errorf("own checks %+v", got[1].Checks)
	}
}

func TestInstanceID(t *testing.T) {
	tests := []struct{ node, service, id string }{
		{"node-a", "web-1", "node-a/web-1"},
		{"a/b", "c", "a%2Fb/c"},
		{"a", "b/c", "a/b%2Fc"},
		{"100%", "x", "100%25/x"},
		{"n", "%2F", "n/%252F"},
	}
	for _, tt := range tests {
		if got := InstanceID(tt.node, tt.service); got != tt.id {
			t.Errorf("InstanceID(%q, %q) = %q, want %q", tt.node, tt.service, got, tt.id)
		}
		node, service, ok := ParseInstanceID(tt.id)
		if !ok || node != tt.node || service != tt.service {
			t.Errorf("ParseInstanceID(%q) = %q, %q, %v", tt.id, node, service, ok)
		}
	}
	for _, bad := range []string{"", "nodeonly", "/x", "x/", "a/b/c", "a%2f/b", "a%zz/b"} {
		if _, _, ok := ParseInstanceID(bad); ok {
			t.Errorf("ParseInstanceID(%q) accepted", bad)
		}
	}
}

func TestURL(t *testing.T) {
	tests := []struct {
		name string
		inst Instance
		want string
	}{
		{"plain http", Instance{Address: "10.0.0.1", Port: 8080}, "http://10.0.0.1:8080"},
		{"default http port left out", Instance{Address: "10.0.0.1", Port: 80}, "http://10.0.0.1"},
		{"port 443 means https", Instance{Address: "10.0.0.1", Port: 443}, "https://10.0.0.1"},
		{"https tag", Instance{Address: "web.local", Port: 8443, Tags: []string{"v1", "https"}}, "https://web.local:8443"},
		{"https tag with port 80 keeps the port", Instance{Address: "web.local", Port: 80, Tags: []string{"https"}}, "https://web.local:80"},
		{"meta scheme", Instance{Address: "web.local", Port: 9000, Meta: map[string]string{"scheme": "HTTPS"}}, "https://web.local:9000"},
		{"unknown meta scheme falls back to http", Instance{Address: "web.local", Port: 21, Meta: map[string]string{"scheme": "ftp"}}, "http://web.local:21"},
		{"no port", Instance{Address: "web.local"}, "http://web.local"},
		{"ipv6", Instance{Address: "2001:db8::1", Port: 8080}, "http://[2001:db8::1]:8080"},
		{"ipv6 default port", Instance{Address: "::1", Port: 443}, "https://[::1]"},
		{"meta url wins", Instance{Address: "10.0.0.1", Port: 8080, Meta: map[string]string{"url": "https://status.example.com/web?x=1"}}, "https://status.example.com/web?x=1"},
		{"javascript meta url gives no link at all", Instance{Address: "10.0.0.1", Port: 8080, Meta: map[string]string{"url": "javascript:alert(1)"}}, ""},
		{"javascript meta url in capitals", Instance{Address: "10.0.0.1", Meta: map[string]string{"url": " JavaScript:alert(1)"}}, ""},
		{"data meta url refused", Instance{Address: "10.0.0.1", Port: 8080, Meta: map[string]string{"url": "data:text/html,<script>alert(1)</script>"}}, ""},
		{"relative meta url refused", Instance{Address: "10.0.0.1", Port: 8080, Meta: map[string]string{"url": "/admin"}}, ""},
		{"scheme-relative meta url refused", Instance{Address: "10.0.0.1", Meta: map[string]string{"url": "//evil.example"}}, ""},
		{"blank meta url is as if unset", Instance{Address: "10.0.0.1", Port: 8080, Meta: map[string]string{"url": "  "}}, "http://10.0.0.1:8080"},
		{"no address", Instance{Port: 8080}, ""},
		{"address that is not a host", Instance{Address: "evil.com/x@y", Port: 80}, ""},
		{"address with space", Instance{Address: "a b", Port: 80}, ""},

		// Links that mislead or lead nowhere: no link (issue 9).
		{"meta url with credentials", Instance{Address: "10.0.0.1", Meta: map[string]string{"url": "http://user:pass@internal/"}}, ""},
		{"meta url with a user only", Instance{Address: "10.0.0.1", Meta: map[string]string{"url": "https://good.example@evil.example/"}}, ""},
		{"meta url with an empty userinfo", Instance{Address: "10.0.0.1", Meta: map[string]string{"url": "https://@evil.example/"}}, ""},
		{"address with userinfo", Instance{Address: "good.example@evil.example", Port: 8080}, ""},
		{"meta url port above 65535", Instance{Meta: map[string]string{"url": "http://h:70000/"}}, ""},
		{"meta url port 65536", Instance{Meta: map[string]string{"url": "http://h:65536/"}}, ""},
		{"meta url port 0", Instance{Meta: map[string]string{"url": "http://h:0/"}}, ""},
		{"meta url port 65535 links", Instance{Meta: map[string]string{"url": "http://h:65535/"}}, "http://h:65535/"},
		{"meta url port 1 links", Instance{Meta: map[string]string{"url": "http://h:1/"}}, "http://h:1/"},
		{"meta url with an empty port links", Instance{Meta: map[string]string{"url": "http://h:/"}}, "http://h:/"},
		{"address port above 65535", Instance{Address: "10.0.0.1", Port: 70000}, ""},
		{"address port 65536", Instance{Address: "10.0.0.1", Port: 65536}, ""},
		{"address port 65535 links", Instance{Address: "10.0.0.1", Port: 65535}, "http://10.0.0.1:65535"},
		{"negative address port", Instance{Address: "10.0.0.1", Port: -1}, ""},
		{"meta url with an ipv6 zone", Instance{Meta: map[string]string{"url": "http://[fe80::1%25eth0]/"}}, ""},
		{"meta url with an ipv6 zone and port", Instance{Meta: map[string]string{"url": "http://[fe80::1%25eth0]:8080/"}}, ""},
		{"address with an ipv6 zone", Instance{Address: "fe80::1%eth0", Port: 8080}, ""},
		{"address with an ipv6 zone, default port", Instance{Address: "fe80::1%eth0", Port: 80}, ""},
		{"meta url ipv6 without zone links", Instance{Meta: map[string]string{"url": "http://[fe80::1]:8080/x"}}, "http://[fe80::1]:8080/x"},
		{"meta url with U+202E in the host", Instance{Meta: map[string]string{"url": "http://moc.‮evil.example/"}}, ""},
		{"meta url with U+202E escaped in the host", Instance{Meta: map[string]string{"url": "http://a%E2%80%AEb.example/"}}, ""},
		{"meta url with U+2067 in the host", Instance{Meta: map[string]string{"url": "http://a⁧b.example/"}}, ""},
		{"meta url with U+200F in the host", Instance{Meta: map[string]string{"url": "https://a‏b.example/"}}, ""},
		{"address with U+202E", Instance{Address: "node‮-evil", Port: 8080}, ""},
		{"meta url with NUL in the host", Instance{Meta: map[string]string{"url": "http://a\x00b/"}}, ""},
		{"meta url with tab in the host", Instance{Meta: map[string]string{"url": "http://a\tb/"}}, ""},
		{"meta url with C1 control in the host", Instance{Meta: map[string]string{"url": "http://a\u0085b/"}}, ""},
		{"address with NUL", Instance{Address: "a\x00b", Port: 8080}, ""},
		{"address with tab", Instance{Address: "a\tb", Port: 8080}, ""},
		{"address with C1 control", Instance{Address: "a\u0085b", Port: 8080}, ""},
		{"U+202E in the path still links", Instance{Meta: map[string]string{"url": "https://good.example/‮abc"}}, "https://good.example/%E2%80%AEabc"},
		{"@ in the path still links", Instance{Meta: map[string]string{"url": "https://good.example/a@b"}}, "https://good.example/a@b"},
		{"internationalised host links", Instance{Meta: map[string]string{"url": "https://bücher.example/"}}, "https://b%C3%BCcher.example/"},
		{"uppercase scheme links", Instance{Meta: map[string]string{"url": "HTTPS://good.example:8443/"}}, "https://good.example:8443/"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := URL(tt.inst); got != tt.want {
				t.Errorf("URL = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestTruncateOutput(t *testing.T) {
	for _, tc := range []struct {
		in   string
		max  int
		want string
		cut  bool
	}{
		{"abc", 3, "abc", false},
		{"abcd", 3, "abc", true},
		{"aé", 2, "a", true},  // é is 2 bytes: never split
		{"a😀b", 4, "a", true}, // nor a 4-byte character
		{"a😀b", 5, "a😀", true},
		{"\xff\xffabc", 1, "\xff", true}, // invalid UTF-8 is cut by bytes
		{"", 0, "", false},
	} {
		if got, cut := TruncateOutput(tc.in, tc.max); got != tc.want || cut != tc.cut {
			t.Errorf("TruncateOutput(%q, %d) = %q, %v; want %q, %v", tc.in, tc.max, got, cut, tc.want, tc.cut)
		}
	}
}

func TestBoundNodeOutputs(t *testing.T) {
	checks := []Check{
		{Node: "a", CheckID: "1", Output: "12345"},
		{Node: "b", CheckID: "1", Output: "1234567890"},
		{Node: "a", CheckID: "2", Output: "12345"},
		{Node: "a", CheckID: "3", Output: "1"},
		{Node: "a", CheckID: "4", Output: ""},
		{Node: "a", CheckID: "5", Output: "12", OutputTruncated: true},
	}
	BoundNodeOutputs(checks, 10)
	want := []struct {
		output    string
		truncated bool
	}{{"12345", false}, {"1234567890", false}, {"12345", false}, {"", true}, {"", false}, {"", true}}
	for i, w := range want {
		if checks[i].Output != w.output || checks[i].OutputTruncated != w.truncated {
			t.Errorf("check %s on %s: output %q truncated %v, want %q %v", checks[i].CheckID, checks[i].Node, checks[i].Output, checks[i].OutputTruncated, w.output, w.truncated)
		}
	}
}
