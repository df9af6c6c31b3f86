package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/saltpeter/saltpeter/core/loadgen"
)

func main() { os.Exit(run(os.Args[1:], os.Stderr)) }

func run(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("saltpeter-loadgen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "unix:/tmp/saltpeter-loadgen.sock", "where the sim plugin dispatches: unix:/path, tcp:host:port or host:port")
	sources := fs.String("sources", "127.0.0.2-127.0.0.9", "local addresses to dial the core from, round-robin: a list and ranges (a-b); empty lets the kernel pick")
	statsAddr := fs.String("stats", "127.0.0.1:7071", "HTTP address serving /stats as JSON; empty for none")
	window := fs.Int("window", 64, "output frames in flight per connection")
	maxDialing := fs.Int("max-dialing", 0, "dials in progress at once (0: no bound)")
	giveUp := fs.Duration("give-up", 5*time.Minute, "a fake wrapper that reaches no core for this long gives up")
	level := fs.String("log-level", "info", "trace, debug, info, warn or error")
	logJSON := fs.Bool("log-json", false, "log JSON lines")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	log := hclog.New(&hclog.LoggerOptions{Name: "loadgen", Level: hclog.LevelFromString(*level),
		Output: stderr, JSONFormat: *logJSON})
	if hclog.LevelFromString(*level) == hclog.NoLevel {
		log.Error("unknown log level", "level", *level)
		return 2
	}
	src, err := loadgen.ParseSources(*sources)
	if err != nil {
		log.Error("bad -sources", "error", err)
		return 2
	}

	// Each fake wrapper holds a socket: tens of thousands of them need far
	// more than the usual 1024 descriptors.
	soft, hard, hardErr, err := raiseNoFile()
	if hardErr != nil {
		log.Warn("open file limit: the hard limit stays", "error", hardErr)
	}
	if err != nil {
		log.Warn("could not raise the open file limit", "error", err, "soft", soft, "hard", hard)
	} else {
		log.Info("open file limit", "soft", soft, "hard", hard)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := serve(ctx, log, *listen, *statsAddr, loadgen.Config{Sources: src, Log: log, Window: *window,
		MaxDialing: *maxDialing, GiveUp: *giveUp}); err != nil {
		log.Error("load generator failed", "error", err)
		return 1
	}
	return 0
}

// serve runs the load generator and its stats endpoint until ctx ends.
func serve(ctx context.Context, log hclog.Logger, listen, statsAddr string, cfg loadgen.Config) error {
	srv := loadgen.New(cfg)
	l, err := loadgen.Listen(listen)
	if err != nil {
		return err
	}
	var hs *http.Server
	hdone := make(chan error, 1)
	if statsAddr != "" {
		hl, err := net.Listen("tcp", statsAddr)
		if err != nil {
			l.Close()
			return fmt.Errorf("listen for stats on %s: %w", statsAddr, err)
		}
		hs = &http.Server{Handler: statsHandler(srv), ReadHeaderTimeout: 10 * time.Second}
		go func() { hdone <- hs.Serve(hl) }()
		log.Info("serving stats", "addr", hl.Addr().String())
	}
	log.Info("load generator listening", "addr", listen, "sources", len(cfg.Sources))
	err = srv.Serve(ctx, l)
	if hs != nil {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if serr := hs.Shutdown(sctx); serr != nil {
			log.Warn("stats server shutdown", "error", serr)
		}
		if herr := <-hdone; herr != nil && !errors.Is(herr, http.ErrServerClosed) && err == nil {
			err = fmt.Errorf("serve stats: %w", herr)
		}
	}
	st := srv.Stats(false)
	log.Info("load generator stopped", "dispatches", st.Dispatches, "completed", st.Completed, "failed", st.Failed)
	return err
}

// statsHandler serves GET /stats (?records=1 adds every record) and
// POST /forget.
func statsHandler(srv *loadgen.Server) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(srv.Stats(r.URL.Query().Get("records") == "1"))
	})
	mux.HandleFunc("POST /forget", func(w http.ResponseWriter, r *http.Request) {
		srv.Forget()
		w.WriteHeader(http.StatusNoContent)
	})
	return mux
}
