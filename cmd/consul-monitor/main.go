// Command consul-monitor watches a Consul cluster, records every service
// instance's health in SQLite and serves a dashboard and JSON API.
//
// Consul's address, token and TLS settings come from Consul's own
// environment variables (CONSUL_HTTP_ADDR, CONSUL_HTTP_TOKEN, CONSUL_CACERT,
// ...), as for every Consul tool.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/consul-monitor/consul-monitor/internal/consul"
	"github.com/consul-monitor/consul-monitor/internal/store"
	"github.com/consul-monitor/consul-monitor/internal/watch"
	"github.com/consul-monitor/consul-monitor/internal/web"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = ""

func main() {
	cfg, err := ParseConfig(os.Args[1:], os.Getenv, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "consul-monitor: %v\n", err)
		os.Exit(2)
	}
	if cfg.ShowVersion {
		fmt.Println("consul-monitor", buildVersion())
		return
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	m := &Main{Config: cfg, Log: newLogger(cfg.LogFormat, os.Stderr)}
	if err := m.Start(ctx); err != nil {
		m.Log.Error("cannot start", "err", err)
		os.Exit(exitStatus(err))
	}
	db, _ := filepath.Abs(cfg.DB) // a relative --db depends on where it was started
	m.Log.Info("consul-monitor started", "version", buildVersion(), "listen", m.Addr, "db", db, "poll_interval", cfg.PollInterval)
	<-ctx.Done()
	stop() // a second signal now kills the process at once
	m.Log.Info("shutting down")
	if err := m.Close(); err != nil {
		m.Log.Error("shutdown", "err", err)
		os.Exit(1)
	}
}

// Config is the parsed command line.
type Config struct {
	Listen       string
	DB           string
	PollInterval time.Duration
	MinQueryGap  time.Duration
	Retention    time.Duration
	LogFormat    string
	// AllowedHosts is --web.allowed-hosts: comma-separated, added to the
	// hosts the monitor is always served as (web.DefaultHosts).
	AllowedHosts string
	// CheckOutputMax is how many bytes of each check's output are kept.
	CheckOutputMax int
	// ConsulAddr overrides CONSUL_HTTP_ADDR when set.
	ConsulAddr  string
	ShowVersion bool
}

// envPrefix names the environment variable behind each flag: --poll-interval
// falls back to CONSUL_MONITOR_POLL_INTERVAL, --web.allowed-hosts to
// CONSUL_MONITOR_WEB_ALLOWED_HOSTS.
const envPrefix = "CONSUL_MONITOR_"

func envName(flagName string) string {
	return envPrefix + strings.ToUpper(strings.NewReplacer("-", "_", ".", "_").Replace(flagName))
}

// ParseConfig reads flags from args. A flag not given falls back to its
// environment variable, then to its default: a variable is read only for a
// flag left out, so a flag always wins, even over a variable that is wrong.
// The error says which flag or variable is wrong and why.
func ParseConfig(args []string, getenv func(string) string, usageOut io.Writer) (Config, error) {
	fs := flag.NewFlagSet("consul-monitor", flag.ContinueOnError)
	fs.SetOutput(usageOut)
	var cfg Config
	// fallbacks apply each variable to its flag, run only for flags not given.
	fallbacks := map[string]func(string) error{}
	str := func(p *string, name, def, usage string) {
		fs.StringVar(p, name, def, usage+" (env "+envName(name)+")")
		fallbacks[name] = func(v string) error { *p = v; return nil }
	}
	dur := func(p *time.Duration, name string, def time.Duration, usage string) {
		fs.DurationVar(p, name, def, usage+" (env "+envName(name)+")")
		fallbacks[name] = func(v string) error {
			d, err := time.ParseDuration(v)
			if err != nil {
				return fmt.Errorf("%s: %q is not a duration such as 60s or 720h", envName(name), v)
			}
			*p = d
			return nil
		}
	}
	bytes := func(p *int, name string, def int, usage string) {
		fs.IntVar(p, name, def, usage+" (env "+envName(name)+")")
		fallbacks[name] = func(v string) error {
			n, err := strconv.Atoi(v)
			if err != nil {
				return fmt.Errorf("%s: %q is not a number of bytes", envName(name), v)
			}
			*p = n
			return nil
		}
	}
	str(&cfg.Listen, "listen", "127.0.0.1:8080", "address to serve the dashboard and API on")
	str(&cfg.DB, "db", "consul-monitor.db", "path of the SQLite history database; a lock file beside it (<db>.lock) keeps a second process out")
	dur(&cfg.PollInterval, "poll-interval", 60*time.Second, "time between two full reads of Consul, besides the blocking queries that follow each change")
	dur(&cfg.MinQueryGap, "min-query-gap", time.Second, "least time between two blocking queries of one watch, after a burst of two")
	dur(&cfg.Retention, "retention", 720*time.Hour, "how long history is kept")
	str(&cfg.LogFormat, "log-format", "text", "log format: text or json")
	str(&cfg.AllowedHosts, "web.allowed-hosts", "", "comma-separated host names or IP addresses (an optional :port is ignored) that the dashboard and API are served as, besides localhost, loopback addresses and the --listen host (with a wildcard --listen, also this machine's host name and addresses); other Host headers get 421. Set the public name when behind a reverse proxy; \"*\" accepts any")
	bytes(&cfg.CheckOutputMax, "check-output-max", consul.DefaultCheckOutputMax,
		fmt.Sprintf("bytes of each check's output kept, from %d to %d; a longer output is cut and marked truncated", consul.MinCheckOutputMax, consul.MaxCheckOutputMax))
	fs.StringVar(&cfg.ConsulAddr, "consul-addr", "", "Consul HTTP address, overriding CONSUL_HTTP_ADDR")
	fs.BoolVar(&cfg.ShowVersion, "version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		return Config{}, err
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var envErrs []error
	fs.VisitAll(func(f *flag.Flag) {
		apply, ok := fallbacks[f.Name]
		if v := getenv(envName(f.Name)); ok && v != "" && !given[f.Name] {
			envErrs = append(envErrs, apply(v))
		}
	})
	if err := errors.Join(envErrs...); err != nil {
		return Config{}, err
	}
	if err := cfg.validate(); err != nil {
		return Config{}, err
	}
	// The Consul client reads CONSUL_HTTP_ADDR itself; check it here only
	// when --consul-addr does not replace it.
	if cfg.ConsulAddr != "" {
		if err := consul.CheckAddress(cfg.ConsulAddr); err != nil {
			return Config{}, fmt.Errorf("--consul-addr: %q is not a Consul address: %v", cfg.ConsulAddr, err)
		}
	} else if v := getenv(api.HTTPAddrEnvName); v != "" {
		if err := consul.CheckAddress(v); err != nil {
			return Config{}, fmt.Errorf("%s: %q is not a Consul address: %v", api.HTTPAddrEnvName, v, err)
		}
	}
	return cfg, nil
}

func (c Config) validate() error {
	if _, port, err := net.SplitHostPort(c.Listen); err != nil {
		return fmt.Errorf("--listen: %q is not host:port", c.Listen)
	} else if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("--listen: %q: port %q is not a number from 0 to 65535", c.Listen, port)
	}
	if c.DB == "" {
		return errors.New("--db: a path is needed")
	}
	if c.PollInterval < 100*time.Millisecond {
		return fmt.Errorf("--poll-interval: %v is shorter than 100ms", c.PollInterval)
	}
	if c.MinQueryGap < 10*time.Millisecond || c.MinQueryGap > c.PollInterval {
		return fmt.Errorf("--min-query-gap: %v is not between 10ms and --poll-interval (%v)", c.MinQueryGap, c.PollInterval)
	}
	// The dashboard shows 24 hours; keeping less would blank part of it.
	if c.Retention < 24*time.Hour {
		return fmt.Errorf("--retention: %v is shorter than the 24h the dashboard shows", c.Retention)
	}
	if _, err := web.NewHosts(c.allowedHosts()...); err != nil {
		return fmt.Errorf("--web.allowed-hosts: %v", err)
	}
	if c.CheckOutputMax < consul.MinCheckOutputMax || c.CheckOutputMax > consul.MaxCheckOutputMax {
		return fmt.Errorf("--check-output-max: %d is not between %d and %d bytes", c.CheckOutputMax, consul.MinCheckOutputMax, consul.MaxCheckOutputMax)
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		return fmt.Errorf("--log-format: %q is neither text nor json", c.LogFormat)
	}
	return nil
}

func (c Config) allowedHosts() []string {
	if c.AllowedHosts == "" {
		return nil
	}
	return strings.Split(c.AllowedHosts, ",")
}

// inputError is a start failure that the operator's input caused, such as
// a listen address in use. Like a bad flag, it exits with status 2.
type inputError struct{ err error }

func (e *inputError) Error() string { return e.err.Error() }
func (e *inputError) Unwrap() error { return e.err }

// exitStatus is 2 for what the operator must fix in the command line or
// its paths (bad input, a database held by another process or unusable
// where it is), 1 for anything else.
func exitStatus(err error) int {
	var input *inputError
	var locked *store.LockedError
	var path *store.PathError
	if errors.As(err, &input) || errors.As(err, &locked) || errors.As(err, &path) {
		return 2
	}
	return 1
}

func newLogger(format string, out io.Writer) *slog.Logger {
	if format == "json" {
		return slog.New(slog.NewJSONHandler(out, nil))
	}
	return slog.New(slog.NewTextHandler(out, nil))
}

func buildVersion() string {
	if version != "" {
		return version
	}
	if info, ok := debug.ReadBuildInfo(); ok && info.Main.Version != "" {
		return info.Main.Version
	}
	return "unknown"
}

// retentionEvery is how often old history is looked for.
const retentionEvery = time.Hour

// Main is a running consul-monitor: what Start opened and Close must stop.
type Main struct {
	Config Config
	Log    *slog.Logger
	// Addr is the address the HTTP server listens on, known after Start.
	Addr string

	store          *store.Store
	httpServer     *http.Server
	stopBackground context.CancelFunc
	background     sync.WaitGroup
}

// Start opens the database, starts the watcher, the retention loop and the
// HTTP server, and returns once the server listens.
func (m *Main) Start(ctx context.Context) error {
	st, err := store.Open(ctx, m.Config.DB)
	if err != nil {
		return err
	}
	st.Log = m.Log
	m.store = st
	key, err := st.SigningKey(ctx)
	if err != nil {
		st.Close()
		return err
	}
	consulCfg := api.DefaultConfig()
	if m.Config.ConsulAddr != "" {
		consulCfg.Address = m.Config.ConsulAddr
	}
	client, err := consul.New(consulCfg, consul.WithCheckOutputMax(m.Config.CheckOutputMax))
	if err != nil {
		st.Close()
		return err
	}
	hosts, err := web.DefaultHosts(m.Config.Listen, m.Config.allowedHosts()...)
	if err != nil { // validate has accepted the list; only the machine's own names are new here
		st.Close()
		return fmt.Errorf("allowed hosts: %w", err)
	}
	listener, err := net.Listen("tcp", m.Config.Listen)
	if err != nil {
		st.Close()
		var opErr *net.OpError
		if errors.As(err, &opErr) {
			err = opErr.Err // the address is named once, below
		}
		return &inputError{fmt.Errorf("--listen %s: %w", m.Config.Listen, err)}
	}
	m.Addr = listener.Addr().String()

	watcher := watch.New(client, st, watch.Config{Reconcile: m.Config.PollInterval, MinQueryGap: m.Config.MinQueryGap}, m.Log)
	backgroundCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	m.stopBackground = cancel
	m.background.Go(func() { watcher.Run(backgroundCtx) })
	m.background.Go(func() {
		watch.RunRetention(backgroundCtx, st, m.Config.Retention, retentionEvery, time.Now, m.Log)
	})

	handler := web.New(st, watcher, key, m.Log)
	handler.Hosts = hosts
	m.httpServer = &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(m.Log.Handler(), slog.LevelWarn),
	}
	m.background.Go(func() {
		if err := m.httpServer.Serve(listener); err != nil && !errors.Is(err, http.ErrServerClosed) {
			m.Log.Error("http server stopped", "err", err)
		}
	})
	return nil
}

// Close stops serving, lets the poll in progress finish its write, stops
// the background loops and closes the database.
func (m *Main) Close() error {
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	httpErr := m.httpServer.Shutdown(shutdownCtx)
	m.stopBackground()
	m.background.Wait()
	return errors.Join(httpErr, m.store.Close())
}
