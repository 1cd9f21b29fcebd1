package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/bulwark-sec/bulwark/internal/config"
	"github.com/bulwark-sec/bulwark/internal/image"
)

// Exit codes, documented in the README.
const (
	ExitOK       = 0
	ExitFindings = 1
	ExitError    = 2
)

// exitError carries an exit code other than ExitError up to Execute.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// globalOptions are the flags every command has.
type globalOptions struct {
	configFile string
	quiet      bool
	logLevel   string
	logFormat  string
	stderr     io.Writer
	profile    profiling
}

func (g *globalOptions) addFlags(cmd *cobra.Command) {
	f := cmd.PersistentFlags()
	f.StringVar(&g.configFile, "config", "", "config file (default $XDG_CONFIG_HOME/bulwark/config.yaml; env BULWARK_CONFIG)")
	f.BoolVarP(&g.quiet, "quiet", "q", false, "no progress output on stderr")
	f.StringVar(&g.logLevel, "log-level", "warn", "log level: debug, info, warn, error")
	f.StringVar(&g.logFormat, "log-format", "text", "log format on stderr: text or json")
	g.profile.addFlags(cmd)
}

// progress returns where progress lines go: stderr when it is a terminal
// and --quiet is not set, else nowhere.
func (g *globalOptions) progress() io.Writer {
	if g.quiet {
		return nil
	}
	if f, ok := g.stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		return f
	}
	return nil
}

func (g *globalOptions) setupLogging() error {
	var level slog.Level
	if err := level.UnmarshalText([]byte(g.logLevel)); err != nil {
		return fmt.Errorf("unknown --log-level %q (want debug, info, warn or error)", g.logLevel)
	}
	hopts := &slog.HandlerOptions{Level: level}
	switch g.logFormat {
	case "text":
		slog.SetDefault(slog.New(slog.NewTextHandler(g.stderr, hopts)))
	case "json":
		slog.SetDefault(slog.New(slog.NewJSONHandler(g.stderr, hopts)))
	default:
		return fmt.Errorf("unknown --log-format %q (want text or json)", g.logFormat)
	}
	return nil
}

// NewRootCmd builds the whole command tree.
func NewRootCmd(stdout, stderr io.Writer) *cobra.Command {
	root, _ := newRootCmd(stdout, stderr)
	return root
}

func newRootCmd(stdout, stderr io.Writer) (*cobra.Command, *globalOptions) {
	g := &globalOptions{stderr: stderr}
	root := &cobra.Command{
		Use:           "bulwark",
		Short:         "Keep container images trustworthy from build to run",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			if err := config.Apply(cmd, g.configFile); err != nil {
				return err
			}
			if err := g.setupLogging(); err != nil {
				return err
			}
			return g.profile.start()
		},
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	g.addFlags(root)
	setVersionFlag(root)
	root.AddCommand(
		newSBOMCmd(g),
		newScanCmd(g),
		newDBCmd(g),
		newPolicyCmd(g),
		newCertifyCmd(g),
		newVerifyCmd(g),
		newKeyCmd(g),
		newServerCmd(g),
		newAdmissionCmd(g),
		newCheckCmd(g),
		newAuditCmd(g),
		newFuzzCmd(g),
		newVersionCmd(),
		newAttestCmd(g),
		newCACmd(g),
		newIdentityCmd(g),
		newSecretCmd(),
		newGovernanceCmd(),
		newRuntimeCmd(),
	)
	usageOnArgErrors(root)
	for _, c := range root.Commands() {
		refuseUnknownSubcommands(c)
	}
	return root, g
}

// refuseUnknownSubcommands makes every command group below the root fail on
// a word that is none of its commands: cobra shows the group's help and
// exits 0, so "bulwark db upate" in a CI step passed having done nothing.
// The group alone still shows its help.
func refuseUnknownSubcommands(c *cobra.Command) {
	if c.HasSubCommands() && !c.Runnable() {
		c.Args = cobra.ArbitraryArgs
		c.RunE = func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return cmd.Help()
			}
			return unknownSubcommand(cmd, args[0])
		}
	}
	for _, sub := range c.Commands() {
		refuseUnknownSubcommands(sub)
	}
}

// unknownSubcommand names the word, what it may have meant and the
// group's commands.
func unknownSubcommand(c *cobra.Command, arg string) error {
	msg := fmt.Sprintf("unknown command %q for %q", arg, c.CommandPath())
	if c.SuggestionsMinimumDistance <= 0 {
		c.SuggestionsMinimumDistance = 2 // cobra's default, set only on the root
	}
	if s := c.SuggestionsFor(arg); len(s) > 0 {
		msg += fmt.Sprintf(" (did you mean %s?)", strings.Join(s, ", "))
	}
	var names []string
	for _, sub := range c.Commands() {
		if sub.IsAvailableCommand() {
			names = append(names, sub.Name())
		}
	}
	return fmt.Errorf("%s; its commands: %s", msg, strings.Join(names, ", "))
}

// usageOnArgErrors makes every command's argument check name what the
// command takes: cobra's "accepts 1 arg(s), received 0" alone says neither.
func usageOnArgErrors(c *cobra.Command) {
	if check := c.Args; check != nil {
		c.Args = func(cmd *cobra.Command, args []string) error {
			if err := check(cmd, args); err != nil {
				if cmd.HasSubCommands() && len(args) > 0 {
					return unknownSubcommand(cmd, args[0])
				}
				return fmt.Errorf("%w (usage: %s)", err, cmd.UseLine())
			}
			return nil
		}
	}
	for _, sub := range c.Commands() {
		usageOnArgErrors(sub)
	}
}

// Execute runs the command line and returns the process exit code.
func Execute(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root, g := newRootCmd(stdout, stderr)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	g.profile.stop()
	if err == nil {
		return ExitOK
	}
	err = image.RegistryError(err)
	fmt.Fprintf(stderr, "bulwark: %v\n", err)
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return ExitError
}
