package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/bulwark-sec/bulwark/internal/config"
	"github.com/bulwark-sec/bulwark/internal/sign"
)

// Exit codes of bulwark-agent.
const (
	ExitOK            = 0
	ExitError         = 1 // a runtime failure (containerd unreachable, ...)
	ExitUsage         = 2 // bad flags
	ExitNoEnforcement = 3 // detect or prevent asked for, but no mechanism works or the canary was not refused (see --allow-degrade)
)

// Main runs bulwark-agent with args and returns its exit code.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "status" {
		return statusMain(args[1:], stdout, stderr)
	}
	fs := pflag.NewFlagSet("bulwark-agent", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	mode := fs.String("mode", string(ModeDetect), "what to do about drift: off, detect or prevent")
	address := fs.String("containerd-address", "/run/containerd/containerd.sock", "containerd's socket")
	nss := fs.String("namespaces", "default,k8s.io", "containerd namespaces to watch, comma-separated")
	inv := fs.String("inventory-dir", "", "directory of inventories (bulwark SBOM JSON) named <manifest digest hex>.json")
	level := fs.String("log-level", "info", "debug, info, warn or error")
	execEvents := execEventsFlag(fs) // unheldkill.go
	replaceDrifted := fs.Bool("replace-drifted", false, "recreate a standalone container (not a Kubernetes pod) from its image on a fresh snapshot when an exec in it drifts")
	nsModes := fs.String("namespace-modes", "", "modes per namespace overriding --mode, NS=MODE,...: a Kubernetes namespace (pod label) or a containerd namespace")
	mrf := addModeRuleFlags(fs) // moderules.go
	mech := fs.String("mechanism", string(MechanismAuto), "how to enforce: auto (bpf-lsm where the kernel allows it, else fanotify), bpf-lsm or fanotify")
	degrade := fs.Bool("allow-degrade", false, "run even when the mechanism asked for is unavailable or the canary is not refused (reported loudly as broken)")
	canaryDir := fs.String("canary-dir", "/run/bulwark-agent", "where the canary's throwaway filesystem is mounted")
	gateCgroup := fs.String("gate-cgroup", "", "hold first execs (the gate) of the processes whose cgroup v2 is this directory or below it, relative to the cgroup2 mount, whatever their pid namespace (hostPID containers too); auto: the kubelet's pods' root (kubepods.slice or kubepods); \"\": containers in pid namespaces of their own, node-wide")
	learn := fs.Duration("learn", 0, "learning window per image digest: what runs beyond the image in its first DURATION runs and is recorded, then the list is locked (0: off)")
	nsLearn := fs.String("namespace-learn", "", "learning windows per namespace overriding --learn, NS=DURATION,... (0: none there)")
	learnDir := fs.String("learn-dir", "/var/lib/bulwark-agent/learned", "where learned lists (signed in-toto attestations) are written")
	learnKey := fs.String("learn-key", "", "cosign-format private key that signs learned lists (passphrase in $BULWARK_AGENT_KEY_PASSWORD)")
	learnPush := fs.Bool("learn-push", false, "push each learned list as an attestation next to its image (registry credentials from the Docker config)")
	of := addOutputFlags(fs)            // outputs.go
	idf := addIdentityFlags(fs)         // identity.go
	allowCache := addAllowlistFlags(fs) // allowsrv.go
	cfgFile := fs.String("config", "", "YAML config file of flag values (top level or under bulwark-agent:). Every flag is also $BULWARK_<FLAG>")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) { // the usage is printed
			return 0
		}
		fmt.Fprintf(stderr, "bulwark-agent: %v\n", err) // ContinueOnError: pflag prints nothing
		return ExitUsage
	}
	// Flags not given: from the environment, then the config file, as the
	// CLI and server read theirs (internal/config; unknown keys are errors).
	// Only --config names a file: the CLI's default file and
	// $BULWARK_CONFIG hold the CLI's keys, not the agent's.
	if err := applyConfig(fs, *cfgFile); err != nil {
		fmt.Fprintf(stderr, "bulwark-agent: %v\n", err)
		return ExitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "bulwark-agent: unexpected argument %q\n", fs.Arg(0))
		return ExitUsage
	}
	m, err := ParseMode(*mode)
	if err != nil {
		fmt.Fprintf(stderr, "bulwark-agent: %v\n", err)
		return ExitUsage
	}
	nm, err := ParseNamespaceModes(*nsModes)
	if err != nil {
		fmt.Fprintf(stderr, "bulwark-agent: %v\n", err)
		return ExitUsage
	}
	mr, err := mrf.parse()
	if err != nil {
		fmt.Fprintf(stderr, "bulwark-agent: %v\n", err)
		return ExitUsage
	}
	mc, err := ParseMechanism(*mech)
	if err != nil {
		fmt.Fprintf(stderr, "bulwark-agent: %v\n", err)
		return ExitUsage
	}
	lc := LearnConfig{Window: *learn, Dir: *learnDir, Push: *learnPush}
	if *learn < 0 {
		fmt.Fprintf(stderr, "bulwark-agent: --learn %s is negative\n", *learn)
		return ExitUsage
	}
	if lc.ByNamespace, err = parseNamespaceDurations(*nsLearn); err != nil {
		fmt.Fprintf(stderr, "bulwark-agent: %v\n", err)
		return ExitUsage
	}
	if *learnKey != "" {
		s, err := sign.LoadKeyFile(*learnKey, []byte(os.Getenv("BULWARK_AGENT_KEY_PASSWORD")))
		if err != nil {
			fmt.Fprintf(stderr, "bulwark-agent: %v\n", err)
			return ExitUsage
		}
		lc.Signer = s
	}
	if *learnPush && lc.Signer == nil {
		fmt.Fprintf(stderr, "bulwark-agent: --learn-push needs --learn-key\n")
		return ExitUsage
	}
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(*level)); err != nil {
		fmt.Fprintf(stderr, "bulwark-agent: parsing --log-level %q: %v\n", *level, err)
		return ExitUsage
	}
	var ns []string
	for _, n := range strings.Split(*nss, ",") {
		if n = strings.TrimSpace(n); n != "" {
			ns = append(ns, n)
		}
	}
	log := slog.New(slog.NewJSONHandler(stdout, &slog.HandlerOptions{Level: lv}))
	outs, err := of.open(log)
	if err != nil {
		fmt.Fprintf(stderr, "bulwark-agent: %v\n", err)
		return ExitUsage
	}
	idn, err := idf.open(outs, log)
	if err != nil {
		fmt.Fprintf(stderr, "bulwark-agent: %v\n", err)
		return ExitUsage
	}
	cfg := Config{Mode: m, Address: *address, Namespaces: ns, InventoryDir: *inv, Log: log, Report: idn.report(outs.report(log)),
		Mechanism: mc, AllowDegrade: *degrade, CanaryDir: *canaryDir, GateCgroup: *gateCgroup, CanaryEvery: *of.heartbeat, Learn: lc, Node: *of.node, NamespaceModes: nm,
		ExecEvents: execEvents.v, ExecEventsDefault: !execEvents.set, ReplaceDrifted: *replaceDrifted, ModeRules: mr}
	if outs.sender != nil { // the server's scan is the allowlist (allowsrv.go)
		cfg.Allowlists, cfg.AllowlistCache = outs.sender, *allowCache
	}
	a, err := New(cfg)
	var noEnf *NoEnforcementError
	if errors.As(err, &noEnf) {
		fmt.Fprintf(stderr, "bulwark-agent: refusing to start in %s mode: %v (--allow-degrade runs anyway, reported as broken)\n", m, err)
		return ExitNoEnforcement
	}
	if err != nil {
		fmt.Fprintf(stderr, "bulwark-agent: %v\n", err)
		return ExitUsage
	}
	log.Info("starting", "mode", m, "mechanism", a.mechanismName(), "namespaces", ns)
	if err := runWithIdentity(ctx, a, outs, idn, log); err != nil {
		fmt.Fprintf(stderr, "bulwark-agent: %v\n", err)
		if errors.As(err, &noEnf) {
			return ExitNoEnforcement
		}
		return ExitError
	}
	return ExitOK
}

// applyConfig sets the flags not given from $BULWARK_<FLAG> and, when file
// is named, from it (internal/config).
func applyConfig(fs *pflag.FlagSet, file string) error {
	if file != "" {
		cmd := &cobra.Command{Use: "bulwark-agent"}
		cmd.Flags().AddFlagSet(fs)
		return config.Apply(cmd, file)
	}
	var errs []error
	fs.VisitAll(func(f *pflag.Flag) {
		if v, ok := os.LookupEnv(config.EnvName(f.Name)); ok && !f.Changed {
			if err := f.Value.Set(v); err != nil {
				errs = append(errs, fmt.Errorf("setting --%s from %s: %w", f.Name, config.EnvName(f.Name), err))
			}
		}
	})
	return errors.Join(errs...)
}
