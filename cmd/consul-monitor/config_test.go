package main

import (
	"io"
	"strings"
	"testing"
	"time"
)

func TestParseConfig(t *testing.T) {
	env := func(kv ...string) func(string) string {
		m := map[string]string{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return func(k string) string { return m[k] }
	}
	none := env()

	cfg, err := ParseConfig(nil, none, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want := Config{Listen: "127.0.0.1:8080", DB: "consul-monitor.db", PollInterval: time.Minute, MinQueryGap: time.Second, Retention: 720 * time.Hour, LogFormat: "text"}
	if cfg != want {
		t.Errorf("defaults %+v", cfg)
	}

	cfg, err = ParseConfig(nil, env("CONSUL_MONITOR_POLL_INTERVAL", "15s", "CONSUL_MONITOR_DB", "/tmp/x.db", "CONSUL_MONITOR_LOG_FORMAT", "json"), io.Discard)
	if err != nil || cfg.PollInterval != 15*time.Second || cfg.DB != "/tmp/x.db" || cfg.LogFormat != "json" {
		t.Errorf("env fallback: %+v %v", cfg, err)
	}
	cfg, err = ParseConfig([]string{"--poll-interval", "5s", "--consul-addr", "10.0.0.1:8500"}, env("CONSUL_MONITOR_POLL_INTERVAL", "15s"), io.Discard)
	if err != nil || cfg.PollInterval != 5*time.Second || cfg.ConsulAddr != "10.0.0.1:8500" {
		t.Errorf("flags over env: %+v %v", cfg, err)
	}

	for _, tc := range []struct {
		args   []string
		env    func(string) string
		errHas string
	}{
		{[]string{"--poll-interval", "60"}, none, "poll-interval"},
		{[]string{"--poll-interval", "10ms"}, none, "--poll-interval: 10ms is shorter than 100ms"},
		{[]string{"--retention", "1h"}, none, "--retention: 1h0m0s is shorter than the 24h"},
		{[]string{"--min-query-gap", "0s"}, none, "--min-query-gap: 0s is not between 10ms"},
		{[]string{"--poll-interval", "1s", "--min-query-gap", "2s"}, none, "--min-query-gap: 2s is not between 10ms and --poll-interval (1s)"},
		{[]string{"--log-format", "xml"}, none, `--log-format: "xml" is neither text nor json`},
		{[]string{"--listen", "8080"}, none, `--listen: "8080" is not host:port`},
		{[]string{"--db", ""}, none, "--db"},
		{[]string{"--nope"}, none, "flag provided but not defined: -nope"},
		{[]string{"extra"}, none, `unexpected argument "extra"`},
		{nil, env("CONSUL_MONITOR_RETENTION", "forever"), `CONSUL_MONITOR_RETENTION: "forever" is not a duration`},
	} {
		if _, err := ParseConfig(tc.args, tc.env, io.Discard); err == nil || !strings.Contains(err.Error(), tc.errHas) {
			t.Errorf("%v: err %v, want %q", tc.args, err, tc.errHas)
		}
	}
}
