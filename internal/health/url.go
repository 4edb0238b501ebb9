package health

import (
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// URL is where a person reaches the instance, or "" when it has no usable
// address. Consul data is untrusted, so only http and https URLs are ever
// returned. A meta.url that is set but is not an absolute http(s) URL gives
// no URL at all: the operator named a place that cannot be linked to, and a
// link built from the address instead could lead somewhere else.
func URL(inst Instance) string {
	if raw, set := inst.Meta["url"]; set && strings.TrimSpace(raw) != "" {
		u, _ := webURL(raw)
		return u
	}
	if inst.Address == "" {
		return ""
	}
	scheme, defaultPort := "http", 80
	if slices.Contains(inst.Tags, "https") || inst.Port == 443 || strings.EqualFold(inst.Meta["scheme"], "https") {
		scheme, defaultPort = "https", 443
	}
	host := inst.Address
	if inst.Port > 0 && inst.Port != defaultPort {
		host = net.JoinHostPort(inst.Address, strconv.Itoa(inst.Port))
	} else if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	built := (&url.URL{Scheme: scheme, Host: host}).String()
	// An address with characters that cannot stand in a host (a slash, an
	// '@', a space) would change what the link points at: give no link.
	if parsed, err := url.Parse(built); err != nil || parsed.Host != host || parsed.User != nil {
		return ""
	}
	return built
}

// webURL accepts raw only as an absolute http or https URL with a host.
func webURL(raw string) (string, bool) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil || u.Host == "" {
		return "", false
	}
	switch strings.ToLower(u.Scheme) {
	case "http", "https":
		return u.String(), true
	}
	return "", false
}
