package main

import (
	"flag"
	"fmt"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
)

// runEtcd runs a single-member etcd embedded in this process. It listens on
// 127.0.0.1 only (plain HTTP: it is reachable only from this machine).
func runEtcd(args []string) int {
	fs := flag.NewFlagSet("etcd", flag.ContinueOnError)
	dataDir := fs.String("data-dir", "", "etcd data directory (required)")
	host := fs.String("listen-host", "127.0.0.1", "address to listen on")
	clientPort := fs.Int("client-port", 12379, "client port")
	peerPort := fs.Int("peer-port", 12380, "peer port")
	logLevel := fs.String("log-level", "warn", "debug, info, warn, error")
	noFsync := fs.Bool("unsafe-no-fsync", true, "disable fsync (throw-away test data; much faster)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *dataDir == "" {
		fmt.Fprintln(os.Stderr, "etcd: --data-dir is required")
		return 2
	}

	mustURL := func(port int) url.URL {
		u, err := url.Parse(fmt.Sprintf("http://%s:%d", *host, port))
		if err != nil {
			panic(err)
		}
		return *u
	}
	cfg := embed.NewConfig()
	cfg.Name = "kcp"
	cfg.Dir = *dataDir
	cfg.ListenClientUrls = []url.URL{mustURL(*clientPort)}
	cfg.AdvertiseClientUrls = []url.URL{mustURL(*clientPort)}
	cfg.ListenPeerUrls = []url.URL{mustURL(*peerPort)}
	cfg.AdvertisePeerUrls = []url.URL{mustURL(*peerPort)}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	cfg.LogLevel = *logLevel
	cfg.LogOutputs = []string{"stderr"}
	cfg.UnsafeNoFsync = *noFsync
	// Only etcdmain's flag parsing fills this in; left at 0 every request
	// is logged as slow.
	cfg.WarningUnaryRequestDuration = embed.DefaultWarningUnaryRequestDuration

	e, err := embed.StartEtcd(cfg)
	if err != nil {
		fmt.Fprintf(os.Stderr, "etcd: start: %v\n", err)
		return 1
	}
	select {
	case <-e.Server.ReadyNotify():
		fmt.Fprintf(os.Stderr, "etcd: ready, serving clients on %s\n", cfg.ListenClientUrls[0].String())
	case <-time.After(60 * time.Second):
		e.Server.Stop()
		fmt.Fprintln(os.Stderr, "etcd: took too long to become ready")
		return 1
	}

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	select {
	case s := <-sig:
		fmt.Fprintf(os.Stderr, "etcd: got %v, shutting down\n", s)
		e.Close()
		return 0
	case err := <-e.Err():
		fmt.Fprintf(os.Stderr, "etcd: %v\n", err)
		e.Close()
		return 1
	}
}
