package cli

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/bulwark-sec/bulwark/internal/sign"
)

// passphraseEnv are the environment variables a key passphrase is read
// from, in order; COSIGN_PASSWORD lets cosign's CI setups work unchanged.
var passphraseEnv = []string{"BULWARK_PASSWORD", "COSIGN_PASSWORD"}

func newKeyCmd(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "key",
		Short: "Manage signing keys",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(newKeyGenerateCmd(g))
	return cmd
}

func newKeyGenerateCmd(g *globalOptions) *cobra.Command {
	var (
		prefix string
		force  bool
	)
	cmd := &cobra.Command{
		Use:   "generate",
		Short: "Generate an ECDSA P-256 key pair for signing images",
		Long: `Generate an ECDSA P-256 key pair: PREFIX.key, the private key encrypted with
a passphrase in cosign's format (mode 0600), and PREFIX.pub, the public key
(mode 0644). cosign reads both files, and Bulwark reads keys cosign made.

The passphrase is read from $BULWARK_PASSWORD (else $COSIGN_PASSWORD); when
neither is set and stdin is a terminal it is asked twice. Existing files are
not overwritten unless --force is given.`,
		Example: `  bulwark key generate --output-key-prefix release
  BULWARK_PASSWORD=... bulwark key generate --output-key-prefix ci`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			keyFile, pubFile := prefix+".key", prefix+".pub"
			if !force {
				for _, f := range []string{keyFile, pubFile} {
					if _, err := os.Lstat(f); err == nil {
						return fmt.Errorf("%s exists (use --force to overwrite it)", f)
					}
				}
			}
			pass, err := readPassphrase(cmd, g, true)
			if err != nil {
				return err
			}
			priv, pub, err := sign.GenerateKey(pass)
			if err != nil {
				return err
			}
			if err := writeKeyFile(keyFile, priv, 0o600, force); err != nil {
				return err
			}
			if err := writeKeyFile(pubFile, pub, 0o644, force); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Private key written to %s\nPublic key written to %s\n", keyFile, pubFile)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&prefix, "output-key-prefix", "bulwark", "write PREFIX.key and PREFIX.pub")
	f.BoolVar(&force, "force", false, "overwrite existing key files")
	return cmd
}

// writeKeyFile writes b to name with exactly mode perm, refusing to
// replace an existing file unless force.
func writeKeyFile(name string, b []byte, perm fs.FileMode, force bool) error {
	flags := os.O_WRONLY | os.O_CREATE | os.O_EXCL
	if force {
		flags = os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	}
	f, err := os.OpenFile(name, flags, perm)
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%s exists (use --force to overwrite it)", name)
		}
		return fmt.Errorf("creating %s: %w", name, err)
	}
	// The umask may have narrowed perm, and an overwritten file keeps its
	// old mode: set it.
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return fmt.Errorf("setting the mode of %s: %w", name, err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", name, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", name, err)
	}
	return nil
}

// readPassphrase returns a key passphrase from the environment, else asks
// on the terminal (twice when confirm). An empty environment variable is
// an empty passphrase; an empty answer at the prompt is refused.
func readPassphrase(cmd *cobra.Command, g *globalOptions, confirm bool) ([]byte, error) {
	for _, name := range passphraseEnv {
		if v, ok := os.LookupEnv(name); ok {
			return []byte(v), nil
		}
	}
	in, ok := cmd.InOrStdin().(*os.File)
	if !ok || !term.IsTerminal(int(in.Fd())) {
		return nil, errors.New("no passphrase: set BULWARK_PASSWORD, or run on a terminal to be asked")
	}
	ask := func(prompt string) ([]byte, error) {
		fmt.Fprint(g.stderr, prompt)
		b, err := term.ReadPassword(int(in.Fd()))
		fmt.Fprintln(g.stderr)
		if err != nil {
			return nil, fmt.Errorf("reading passphrase: %w", err)
		}
		return b, nil
	}
	pass, err := ask("Enter passphrase for the private key: ")
	if err != nil {
		return nil, err
	}
	if len(pass) == 0 {
		return nil, errors.New("empty passphrase (set BULWARK_PASSWORD= to mean it)")
	}
	if confirm {
		again, err := ask("Enter it again: ")
		if err != nil {
			return nil, err
		}
		if !bytes.Equal(pass, again) {
			return nil, errors.New("the passphrases differ")
		}
	}
	return pass, nil
}
