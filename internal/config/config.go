package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"gopkg.in/yaml.v3"
)

// EnvPrefix starts every environment variable Bulwark reads.
const EnvPrefix = "BULWARK_"

// EnvName is the environment variable for a flag.
func EnvName(flag string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// DefaultFile is the config file read when none is named.
func DefaultFile() string {
	dir, err := os.UserConfigDir()
	if err != nil {
		return ""
	}
	return filepath.Join(dir, "bulwark", "config.yaml")
}

// Apply sets cmd's flags that were not given on the command line from the
// environment and then from the config file (file, else $BULWARK_CONFIG,
// else DefaultFile when it exists).
func Apply(cmd *cobra.Command, file string) error {
	values, err := load(cmd, file)
	if err != nil {
		return err
	}
	var errs []error
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		if f.Changed {
			return
		}
		src, val, ok := "", "", false
		if v, set := os.LookupEnv(EnvName(f.Name)); set {
			src, val, ok = EnvName(f.Name), v, true
		} else if v, set := values[f.Name]; set {
			src, val, ok = "config file", v, true
		}
		if !ok {
			return
		}
		if err := setFlag(f, val); err != nil {
			errs = append(errs, fmt.Errorf("setting --%s from %s: %w", f.Name, src, err))
		}
	})
	return errors.Join(errs...)
}

func setFlag(f *pflag.Flag, val string) error {
	if sv, ok := f.Value.(pflag.SliceValue); ok {
		return sv.Replace(strings.Split(val, ","))
	}
	return f.Value.Set(val)
}

// load reads the config file into flag name -> value for cmd: top-level
// keys first, then the keys of cmd's own section.
func load(cmd *cobra.Command, file string) (map[string]string, error) {
	explicit := file != ""
	if file == "" {
		file = os.Getenv(EnvPrefix + "CONFIG")
		explicit = file != ""
	}
	if file == "" {
		file = DefaultFile()
	}
	if file == "" {
		return nil, nil
	}
	raw, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) && !explicit {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading config file: %w", err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("parsing config file %s: %w", file, err)
	}
	flags, commands := known(cmd.Root())
	out := map[string]string{}
	var own map[string]any
	for k, v := range doc {
		section, isSection := v.(map[string]any)
		switch {
		case isSection && !slices.Contains(commands, k):
			return nil, fmt.Errorf("config file %s: unknown command section %q", file, k)
		case isSection:
			for sk := range section {
				if !flags[sk] {
					return nil, fmt.Errorf("config file %s: %s: unknown key %q", file, k, sk)
				}
			}
			if k == cmd.Name() {
				own = section
			}
		case !flags[k]:
			return nil, fmt.Errorf("config file %s: unknown key %q", file, k)
		default:
			out[k] = scalar(v)
		}
	}
	for k, v := range own { // the command's own section wins over the top level
		out[k] = scalar(v)
	}
	return out, nil
}

func scalar(v any) string {
	if list, ok := v.([]any); ok {
		parts := make([]string, len(list))
		for i, e := range list {
			parts[i] = fmt.Sprint(e)
		}
		return strings.Join(parts, ",")
	}
	return fmt.Sprint(v)
}

// known lists every flag name and command name in the tree.
func known(root *cobra.Command) (map[string]bool, []string) {
	flags := map[string]bool{}
	var commands []string
	var walk func(*cobra.Command)
	walk = func(c *cobra.Command) {
		commands = append(commands, c.Name())
		c.Flags().VisitAll(func(f *pflag.Flag) { flags[f.Name] = true })
		c.PersistentFlags().VisitAll(func(f *pflag.Flag) { flags[f.Name] = true })
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	return flags, commands
}
