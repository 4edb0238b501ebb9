// Command consul-loadgen fills a Consul agent with a synthetic cluster and
// keeps changing it, for demos and load tests. Point it only at a Consul you
// own: it registers nodes and flips their checks.
//
//	consul-loadgen --consul-addr 127.0.0.1:8500 --nodes 100 --services 10 --flip-per-minute 0.01
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/consul-monitor/consul-monitor/internal/loadgen"
)

func main() {
	fs := flag.NewFlagSet("consul-loadgen", flag.ContinueOnError)
	consulAddr := fs.String("consul-addr", "", "Consul HTTP address, overriding CONSUL_HTTP_ADDR")
	var cfg loadgen.Config
	fs.IntVar(&cfg.Nodes, "nodes", 10, "nodes to register through the catalog")
	fs.IntVar(&cfg.ServicesPerNode, "services", 3, "service instances on each node")
	fs.IntVar(&cfg.TTLServices, "ttl-services", 0, "services with real TTL checks on the local agent")
	fs.Float64Var(&cfg.FlipPerMinute, "flip-per-minute", 0.01, "fraction of checks changed every minute")
	fs.Uint64Var(&cfg.Seed, "seed", 1, "random seed, so that runs can be repeated")
	duration := fs.Duration("duration", 0, "stop flipping after this long (0: until interrupted)")
	if err := fs.Parse(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		os.Exit(2)
	}
	if cfg.Nodes < 0 || cfg.ServicesPerNode < 1 || cfg.FlipPerMinute < 0 || cfg.FlipPerMinute > 60 {
		fmt.Fprintln(os.Stderr, "consul-loadgen: --nodes must be at least 0, --services at least 1, --flip-per-minute between 0 and 60")
		os.Exit(2)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *duration)
		defer cancel()
	}
	if err := run(ctx, *consulAddr, cfg, log); err != nil {
		log.Error("consul-loadgen failed", "err", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, consulAddr string, cfg loadgen.Config, log *slog.Logger) error {
	apiCfg := api.DefaultConfig()
	if consulAddr != "" {
		apiCfg.Address = consulAddr
	}
	client, err := api.NewClient(apiCfg)
	if err != nil {
		return err
	}
	if err := waitForLeader(ctx, client, apiCfg.Address); err != nil {
		return err
	}
	gen := loadgen.New(client, cfg, log)
	started := time.Now()
	if err := gen.Register(ctx); err != nil {
		return err
	}
	log.Info("registered", "nodes", cfg.Nodes, "instances", cfg.Nodes*cfg.ServicesPerNode+cfg.TTLServices,
		"checks", gen.Checks(), "took", time.Since(started).Round(time.Millisecond))
	if err := gen.Run(ctx); err != nil {
		return err
	}
	log.Info("stopped", "flips", gen.Flips())
	return nil
}

// waitForLeader waits up to a minute for Consul to elect a leader, so the
// generator can be started together with a fresh agent.
func waitForLeader(ctx context.Context, client *api.Client, addr string) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for {
		leader, err := client.Status().LeaderWithQueryOptions((&api.QueryOptions{}).WithContext(ctx))
		if err == nil && leader != "" {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("no Consul leader at %s: %v", addr, err)
		case <-time.After(250 * time.Millisecond):
		}
	}
}
