package consul

import (
	"strings"
	"testing"
)

func TestCheckAddress(t *testing.T) {
	for _, ok := range []string{
		"127.0.0.1:8500", "localhost:8500", "consul", "consul.service.consul:8501",
		"http://10.0.0.1:8500", "https://consul.example.com", "https://consul.example.com/consul-prefix",
		"[::1]:8500", "http://[fe80::1]:8500", "unix:///run/consul/consul.sock", "my_host:1",
	} {
		if err := CheckAddress(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, tc := range []struct{ addr, why string }{
		{"", "empty"},
		{"localhost:85OO", `port "85OO" is not a number`},
		{"localhost:0", `port "0" is not a number from 1 to 65535`},
		{"localhost:99999", `port "99999"`},
		{"localhost:", "port after ':' is missing"},
		{":8500", "host is missing"},
		{"http://", "host is missing"},
		{"ftp://consul:8500", `scheme "ftp" is not http, https or unix`},
		{"unix://consul.sock", "absolute socket path"},
		{"consul:8500/v1", "a path needs a scheme"},
		{"consul 8500", "white space"},
		{"::1", "IPv6 address needs brackets"},
		{"10.0.0.300:8500", `host "10.0.0.300" is neither`},
		{"con$ul:8500", `host "con$ul" is neither`},
		{"-consul:8500", "neither"},
		{"http://user:pw@consul:8500", "credentials"},
		{"a:b:c", "brackets"},
	} {
		err := CheckAddress(tc.addr)
		if err == nil || !strings.Contains(err.Error(), tc.why) {
			t.Errorf("%q: err %v, want %q", tc.addr, err, tc.why)
		}
	}
}
