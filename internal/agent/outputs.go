package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"golang.org/x/sync/errgroup"

	"github.com/bulwark-sec/bulwark/internal/agentproto"
	"github.com/bulwark-sec/bulwark/internal/secretfile"
	"github.com/bulwark-sec/bulwark/internal/spool"
	"github.com/bulwark-sec/bulwark/internal/tokenfile"
)

// outputFlags are the flags of what the agent tells others: the server
// (events and heartbeats), the status file and the metrics.
type outputFlags struct {
	server, tokenFile, node, spoolDir, statusFile, metrics *string
	spoolBytes                                             *int64
	heartbeat                                              *time.Duration
	secrets                                                *string
	hostRoot                                               *string
	hostEvery                                              *time.Duration
}

func addOutputFlags(fs *pflag.FlagSet) *outputFlags {
	host, _ := os.Hostname()
	return &outputFlags{
		server:     fs.String("server", "", "bulwark server URL to send drift events and heartbeats to (none: events are logged only)"),
		tokenFile:  fs.String("token-file", "", "file holding the server token: an API token of role operator, or the pod's projected service account token; read again as it changes (every 5 s, at once on a 401); else $BULWARK_AGENT_TOKEN"),
		node:       fs.String("node", host, "this node's name"),
		spoolDir:   fs.String("spool-dir", "/var/lib/bulwark-agent/spool", "where events wait for the server"),
		spoolBytes: fs.Int64("spool-bytes", 64<<20, "bound of the spool on disk; past it the oldest events are dropped and counted"),
		heartbeat:  fs.Duration("heartbeat", 30*time.Second, "how often the node's state goes to the server"),
		statusFile: fs.String("status-file", "/run/bulwark-agent/status.json", "where the agent writes its status for `bulwark-agent status`"),
		metrics:    fs.String("metrics-address", "", "loopback address for Prometheus metrics, e.g. 127.0.0.1:9464 (none: off)"),
		secrets:    fs.String("secret-volumes", "", "tmpfs directory of the containers' secret volumes (DIR/<container id>, mounted read-only into the container) the agent writes the secrets they ask for into (none: off; docs/secret-store.md)"),
		hostRoot:   fs.String("host-root", "/", "the node's root filesystem, cataloged and sent to the server at start and every --host-inventory-every (\"\": off)"),
		hostEvery:  fs.Duration("host-inventory-every", 24*time.Hour, "how often the host is cataloged again"),
	}
}

// outputs is what the flags opened.
type outputs struct {
	flags  *outputFlags
	spool  *spool.Spool
	sender *Sender
}

// open checks the flags and opens the spool and sender when a server is
// given. Errors are usage errors.
func (o *outputFlags) open(log *slog.Logger) (*outputs, error) {
	out := &outputs{flags: o}
	if *o.metrics != "" {
		if err := checkLoopback(*o.metrics); err != nil {
			return nil, err
		}
	}
	if *o.server == "" {
		return out, nil
	}
	if !strings.HasPrefix(*o.server, "https://") && !strings.HasPrefix(*o.server, "http://") {
		return nil, fmt.Errorf("--server %q: want an http(s):// URL", *o.server)
	}
	// The file is read again as it changes: the kubelet rotates a
	// projected service account token (docs/server.md "Agent
	// authentication").
	tokens := tokenfile.Static(os.Getenv("BULWARK_AGENT_TOKEN"))
	if *o.tokenFile != "" {
		var err error
		if tokens, err = tokenfile.Open(*o.tokenFile, 0); err != nil {
			return nil, fmt.Errorf("--token-file: %w", err)
		}
	}
	if tokens.Token() == "" {
		return nil, errors.New("--server needs a token: --token-file or $BULWARK_AGENT_TOKEN")
	}
	if *o.node == "" {
		return nil, errors.New("--node is empty")
	}
	sp, err := spool.Open(*o.spoolDir, *o.spoolBytes)
	if err != nil {
		return nil, err
	}
	out.spool = sp
	out.sender = NewSender(SenderConfig{URL: *o.server, Tokens: tokens, Node: *o.node, Spool: sp,
		HeartbeatEvery: *o.heartbeat, Log: log})
	return out, nil
}

// report is the agent's Report: logged, and spooled when a server is set.
func (o *outputs) report(log *slog.Logger) func(Event) {
	lr := logReport(log)
	if o.sender == nil {
		return lr
	}
	return func(e Event) { lr(e); o.sender.Report(e) }
}

// run runs the sender, the status file writer and the metrics server
// beside the agent until ctx ends.
func (o *outputs) run(ctx context.Context, a *Agent, log *slog.Logger) error {
	if o.spool != nil {
		defer o.spool.Close()
	}
	status := func() Status { return a.status(*o.flags.node, *o.flags.server, o.spool, o.sender) }
	g, ctx := errgroup.WithContext(ctx)
	if o.sender != nil {
		o.sender.cfg.Heartbeat = func() agentproto.Heartbeat { return a.Heartbeat(o.spool) }
		g.Go(func() error { return o.sender.Run(ctx) })
		g.Go(func() error { return a.RunFlows(ctx, o.sender, *o.flags.node, 0) }) // docs/governance.md
		if *o.flags.secrets != "" {
			vols := &secretfile.Volumes{Root: *o.flags.secrets}
			g.Go(func() error { return a.RunSecrets(ctx, o.sender, vols, *o.flags.node, 0) })
		}
		if *o.flags.hostRoot != "" {
			g.Go(func() error {
				return a.hostInventoryLoop(ctx, o.sender, *o.flags.node, *o.flags.hostRoot, max(*o.flags.hostEvery, time.Minute))
			})
		}
	}
	if *o.flags.statusFile != "" {
		g.Go(func() error {
			t := time.NewTicker(2 * time.Second)
			defer t.Stop()
			for {
				if err := writeStatus(*o.flags.statusFile, status()); err != nil {
					log.Warn("writing the status file", "error", err)
				}
				select {
				case <-ctx.Done():
					return nil
				case <-t.C:
				}
			}
		})
	}
	if *o.flags.metrics != "" {
		ln, err := net.Listen("tcp", *o.flags.metrics)
		if err != nil {
			return fmt.Errorf("listening for metrics on %q: %w", *o.flags.metrics, err)
		}
		srv := &http.Server{Handler: metricsHandler(status), ReadHeaderTimeout: 5 * time.Second}
		g.Go(func() error {
			<-ctx.Done()
			return srv.Close()
		})
		g.Go(func() error {
			if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("serving metrics: %w", err)
			}
			return nil
		})
	}
	return g.Wait()
}

// runWithOutputs runs the agent and its outputs; when the agent stops,
// so do they.
func runWithOutputs(ctx context.Context, a *Agent, o *outputs, log *slog.Logger) error {
	octx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- o.run(octx, a, log) }()
	err := a.Run(ctx)
	cancel()
	if oerr := <-done; err == nil {
		err = oerr
	}
	return err
}
