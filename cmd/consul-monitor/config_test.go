package main

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/consul-monitor/consul-monitor/internal/store"
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
	want := Config{Listen: "127.0.0.1:8080", DB: "consul-monitor.db", PollInterval: time.Minute, MinQueryGap: time.Second, Retention: 720 * time.Hour, LogFormat: "text", CheckOutputMax: 4096}
	if cfg != want {
		t.Errorf("defaults %+v", cfg)
	}

	cfg, err = ParseConfig(nil, env("CONSUL_MONITOR_POLL_INTERVAL", "15s", "CONSUL_MONITOR_DB", "/tmp/x.db", "CONSUL_MONITOR_LOG_FORMAT", "json"), io.Discard)
	if err != nil || cfg.PollInterval != 15*time.Second || cfg.DB != "/tmp/x.db" || cfg.LogFormat != "json" {
		t.Errorf("env fallback: %+v %v", cfg, err)
	}
	cfg, err = ParseConfig(nil, env("CONSUL_MONITOR_WEB_ALLOWED_HOSTS", "monitor.example, 10.1.2.3:8080"), io.Discard)
	if err != nil || cfg.AllowedHosts != "monitor.example, 10.1.2.3:8080" {
		t.Errorf("allowed hosts from env: %+v %v", cfg, err)
	}
	cfg, err = ParseConfig([]string{"--poll-interval", "5s", "--consul-addr", "10.0.0.1:8500"}, env("CONSUL_MONITOR_POLL_INTERVAL", "15s"), io.Discard)
	if err != nil || cfg.PollInterval != 5*time.Second || cfg.ConsulAddr != "10.0.0.1:8500" {
		t.Errorf("flags over env: %+v %v", cfg, err)
	}

	// A flag wins over its variable, even a variable that would not parse:
	// the variable is not read at all.
	cfg, err = ParseConfig([]string{"--retention", "48h", "--consul-addr", "10.0.0.1:8500"},
		env("CONSUL_MONITOR_RETENTION", "bogus", "CONSUL_MONITOR_POLL_INTERVAL", "often", "CONSUL_HTTP_ADDR", "localhost:85OO"), io.Discard)
	if err == nil || cfg.Retention != 0 || !strings.Contains(err.Error(), "CONSUL_MONITOR_POLL_INTERVAL") || strings.Contains(err.Error(), "RETENTION") || strings.Contains(err.Error(), "CONSUL_HTTP_ADDR") {
		t.Errorf("an invalid variable behind a flag: %+v %v", cfg, err)
	}
	cfg, err = ParseConfig([]string{"--retention", "48h", "--poll-interval", "2s", "--consul-addr", "10.0.0.1:8500"},
		env("CONSUL_MONITOR_RETENTION", "bogus", "CONSUL_MONITOR_POLL_INTERVAL", "often", "CONSUL_HTTP_ADDR", "localhost:85OO"), io.Discard)
	if err != nil || cfg.Retention != 48*time.Hour || cfg.PollInterval != 2*time.Second {
		t.Errorf("flags over invalid variables: %+v %v", cfg, err)
	}
	cfg, err = ParseConfig(nil, env("CONSUL_MONITOR_CHECK_OUTPUT_MAX", "1048576"), io.Discard)
	if err != nil || cfg.CheckOutputMax != 1<<20 {
		t.Errorf("CONSUL_MONITOR_CHECK_OUTPUT_MAX: %+v %v", cfg, err)
	}
	cfg, err = ParseConfig([]string{"--check-output-max", "256"}, env("CONSUL_MONITOR_CHECK_OUTPUT_MAX", "lots"), io.Discard)
	if err != nil || cfg.CheckOutputMax != 256 {
		t.Errorf("--check-output-max over its variable: %+v %v", cfg, err)
	}
	cfg, err = ParseConfig(nil, env("CONSUL_HTTP_ADDR", "https://consul.example.com:8501"), io.Discard)
	if err != nil || cfg.ConsulAddr != "" {
		t.Errorf("a valid CONSUL_HTTP_ADDR is left to the Consul client: %+v %v", cfg, err)
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
		{[]string{"--check-output-max", "255"}, none, "--check-output-max: 255 is not between 256 and 1048576 bytes"},
		{[]string{"--check-output-max", "1048577"}, none, "--check-output-max: 1048577 is not between 256"},
		{[]string{"--check-output-max", "4k"}, none, "check-output-max"},
		{nil, env("CONSUL_MONITOR_CHECK_OUTPUT_MAX", "4k"), `CONSUL_MONITOR_CHECK_OUTPUT_MAX: "4k" is not a number of bytes`},
		{nil, env("CONSUL_MONITOR_CHECK_OUTPUT_MAX", "100"), "--check-output-max: 100 is not between"},
		{[]string{"--nope"}, none, "flag provided but not defined: -nope"},
		{[]string{"extra"}, none, `unexpected argument "extra"`},
		{nil, env("CONSUL_MONITOR_RETENTION", "forever"), `CONSUL_MONITOR_RETENTION: "forever" is not a duration`},
		{nil, env("CONSUL_MONITOR_RETENTION", "1h"), "--retention: 1h0m0s is shorter"},
		{[]string{"--listen", "127.0.0.1:80800"}, none, `--listen: "127.0.0.1:80800": port "80800" is not a number from 0 to 65535`},
		{[]string{"--consul-addr", "localhost:85OO"}, none, `--consul-addr: "localhost:85OO" is not a Consul address: port "85OO" is not a number`},
		{[]string{"--consul-addr", "ftp://consul"}, none, `--consul-addr: "ftp://consul" is not a Consul address: scheme "ftp"`},
		{[]string{"--web.allowed-hosts", "monitor.example,evil/x"}, none, `--web.allowed-hosts: "evil/x" is not a host name or IP address`},
		{nil, env("CONSUL_MONITOR_WEB_ALLOWED_HOSTS", "[fe80::1%eth0]"), `--web.allowed-hosts: "[fe80::1%eth0]" is not a host name`},
		{nil, env("CONSUL_HTTP_ADDR", "consul 8500"), `CONSUL_HTTP_ADDR: "consul 8500" is not a Consul address: it contains white space`},
	} {
		if _, err := ParseConfig(tc.args, tc.env, io.Discard); err == nil || !strings.Contains(err.Error(), tc.errHas) {
			t.Errorf("%v: err %v, want %q", tc.args, err, tc.errHas)
		}
	}
}

func TestExitStatus(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want int
	}{
		{fmt.Errorf("start: %w", &store.LockedError{Path: "/h.db", PID: 7, Host: "a"}), 2},
		{fmt.Errorf("start: %w", &store.PathError{Path: "/h.db", Reason: "it is a directory"}), 2},
		{&inputError{errors.New("--listen :1: bind: address already in use")}, 2},
		{errors.New("store: migration 0002: disk I/O error"), 1},
	} {
		if got := exitStatus(tc.err); got != tc.want {
			t.Errorf("%v: exit %d, want %d", tc.err, got, tc.want)
		}
	}
}
