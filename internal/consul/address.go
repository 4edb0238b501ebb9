package consul

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// CheckAddress tells why addr cannot be a Consul HTTP address, in the forms
// Consul's own tools take: host, host:port, http:// or https:// with an
// optional path prefix, or unix:///path/to/socket. The API client accepts
// nearly any string and then fails every request, so a typo would otherwise
// show only as warnings for ever.
func CheckAddress(addr string) error {
	if addr == "" {
		return errors.New("it is empty")
	}
	if strings.ContainsAny(addr, " \t\r\n") {
		return errors.New("it contains white space")
	}
	rest := addr
	if scheme, after, ok := strings.Cut(addr, "://"); ok {
		switch scheme {
		case "http", "https":
			rest = after
			// A path after the host is a reverse proxy's prefix.
			rest, _, _ = strings.Cut(rest, "/")
		case "unix":
			if !strings.HasPrefix(after, "/") {
				return fmt.Errorf("unix:// needs an absolute socket path, as in unix:///run/consul.sock")
			}
			return nil
		default:
			return fmt.Errorf("scheme %q is not http, https or unix", scheme)
		}
	} else if strings.Contains(addr, "/") {
		return errors.New("a path needs a scheme first, as in http://host:8500/prefix")
	}
	if strings.Contains(rest, "@") {
		return errors.New("credentials belong in CONSUL_HTTP_AUTH or a token, not the address")
	}
	host, port := rest, ""
	if h, p, err := net.SplitHostPort(rest); err == nil {
		host, port = h, p
		if port == "" {
			return errors.New("the port after ':' is missing")
		}
	} else if strings.Count(rest, ":") > 1 && !strings.HasPrefix(rest, "[") {
		return errors.New("an IPv6 address needs brackets, as in [::1]:8500")
	} else if strings.Contains(rest, ":") {
		return fmt.Errorf("%q is not host:port", rest)
	}
	if port != "" {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("port %q is not a number from 1 to 65535", port)
		}
	}
	if host == "" {
		return errors.New("the host is missing")
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return nil
	}
	if !validHostname(host) {
		return fmt.Errorf("host %q is neither an IP address nor a DNS name", host)
	}
	return nil
}

// validHostname accepts DNS names: dot-separated labels of letters, digits,
// hyphens and underscores, not starting or ending with a hyphen.
func validHostname(host string) bool {
	host = strings.TrimSuffix(host, ".")
	if host == "" || len(host) > 253 {
		return false
	}
	allDigits := true
	for label := range strings.SplitSeq(host, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			switch {
			case r >= '0' && r <= '9':
			case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r == '-', r == '_':
				allDigits = false
			default:
				return false
			}
		}
	}
	// 10.0.0.300 is a mistyped IP, not a name.
	return !allDigits
}
