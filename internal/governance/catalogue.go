package governance

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/bulwark-sec/bulwark/internal/yamlmsg"
)

// Regulations Bulwark knows by name; a catalogue may govern its classes
// with these only, so a typo ("gpdr") is an error, not a regulation
// nobody reports on.
var Regulations = map[string]string{
	"gdpr":    "EU General Data Protection Regulation",
	"hipaa":   "US Health Insurance Portability and Accountability Act",
	"pci-dss": "Payment Card Industry Data Security Standard",
	"ccpa":    "California Consumer Privacy Act",
	"lgpd":    "Brazil Lei Geral de Protecao de Dados",
	"pipeda":  "Canada Personal Information Protection and Electronic Documents Act",
}

// Regulation governs data classes: where their data may be processed
// (Regions; empty is anywhere) and how long it may be kept.
type Regulation struct {
	Name      string   `yaml:"name" json:"name"`
	Classes   []string `yaml:"classes" json:"classes"`
	Regions   []string `yaml:"regions,omitempty" json:"regions,omitempty"`
	Retention string   `yaml:"retention,omitempty" json:"retention,omitempty"` // "30d", "6y", "720h"
}

// Class is a kind of data.
type Class struct {
	Name        string   `yaml:"name" json:"name"`
	Description string   `yaml:"description,omitempty" json:"description,omitempty"`
	Regions     []string `yaml:"regions,omitempty" json:"regions,omitempty"` // narrowed further by its regulations
}

// DataStore is where data of some classes lives. Address is matched
// against observed connections: "host:port", "host" (any port), an IP
// prefix "10.1.0.0/16" or "10.1.0.0/16:5432"; a store without an address
// (a bucket reached through an SDK, a secret) is reached through grants
// and secrets only.
type DataStore struct {
	Name    string   `yaml:"name" json:"name"`
	Address string   `yaml:"address,omitempty" json:"address,omitempty"`
	Classes []string `yaml:"classes" json:"classes"`
	Region  string   `yaml:"region,omitempty" json:"region,omitempty"` // where the store itself is
}

// Application is an application (as the server's applications know it)
// and the data classes it is granted.
type Application struct {
	Name    string   `yaml:"name" json:"name"`
	Classes []string `yaml:"classes" json:"classes"`
}

// Catalogue is the whole governance configuration.
type Catalogue struct {
	Classes      []Class           `yaml:"classes" json:"classes"`
	Regulations  []Regulation      `yaml:"regulations" json:"regulations"`
	Stores       []DataStore       `yaml:"stores" json:"stores"`
	Applications []Application     `yaml:"applications" json:"applications"`
	Nodes        map[string]string `yaml:"nodes,omitempty" json:"nodes,omitempty"` // node -> region

	classes map[string]*classInfo
	grants  map[string]map[string]bool // application -> class
	matches []storeMatch
}

type classInfo struct {
	regions     []string // nil: anywhere
	regulations []string
	retention   time.Duration
}

type storeMatch struct {
	store  int
	prefix netip.Prefix // valid when the address is an IP or prefix
	host   string       // else
	port   string       // "" any
}

// MaxCatalogue bounds a catalogue file.
const MaxCatalogue = 4 << 20

// ErrInvalid is the cause of every error about a catalogue's or a
// request's content.
var ErrInvalid = errors.New("invalid governance input")

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

var (
	nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)
	portRE = regexp.MustCompile(`^[0-9]{1,5}$`)
)

// Load reads and parses a catalogue file.
func Load(path string) (*Catalogue, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading governance catalogue: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxCatalogue+1))
	if err != nil {
		return nil, fmt.Errorf("reading governance catalogue %s: %w", path, err)
	}
	c, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("parsing governance catalogue %s: %w", path, err)
	}
	return c, nil
}

// Parse decodes a catalogue (YAML; unknown keys are errors) and validates
// it: names, references between classes, regulations, stores and
// applications, regions, retention.
func Parse(b []byte) (*Catalogue, error) {
	if len(b) > MaxCatalogue {
		return nil, invalid("%d bytes, at most %d", len(b), MaxCatalogue)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	var c Catalogue
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		return nil, invalid("%s", yamlmsg.Of(err))
	}
	var extra any
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, invalid("more than one YAML document")
	}
	return &c, c.compile()
}

func (c *Catalogue) compile() error {
	c.classes = map[string]*classInfo{}
	for _, cl := range c.Classes {
		if err := checkName("class", cl.Name); err != nil {
			return err
		}
		if c.classes[cl.Name] != nil {
			return invalid("class %q is defined twice", cl.Name)
		}
		if err := checkRegions("class "+cl.Name, cl.Regions); err != nil {
			return err
		}
		c.classes[cl.Name] = &classInfo{regions: nilIfEmpty(cl.Regions)}
	}
	seen := map[string]bool{}
	for _, r := range c.Regulations {
		if _, ok := Regulations[r.Name]; !ok {
			return invalid("unknown regulation %q (known: %s)", r.Name, strings.Join(sortedKeys(Regulations), ", "))
		}
		if seen[r.Name] {
			return invalid("regulation %q is listed twice", r.Name)
		}
		seen[r.Name] = true
		if err := checkRegions("regulation "+r.Name, r.Regions); err != nil {
			return err
		}
		keep, err := ParseRetention(r.Retention)
		if err != nil {
			return invalid("regulation %s: %v", r.Name, err)
		}
		if len(r.Classes) == 0 {
			return invalid("regulation %s governs no class", r.Name)
		}
		for _, name := range r.Classes {
			ci := c.classes[name]
			if ci == nil {
				return invalid("regulation %s: unknown class %q", r.Name, name)
			}
			ci.regulations = append(ci.regulations, r.Name)
			ci.regions = narrow(ci.regions, r.Regions)
			if keep > 0 && (ci.retention == 0 || keep < ci.retention) {
				ci.retention = keep
			}
		}
	}
	names := map[string]bool{}
	for i, s := range c.Stores {
		if err := checkName("store", s.Name); err != nil {
			return err
		}
		if names[s.Name] {
			return invalid("store %q is defined twice", s.Name)
		}
		names[s.Name] = true
		if err := c.knownClasses("store "+s.Name, s.Classes); err != nil {
			return err
		}
		if s.Region != "" {
			if err := checkRegions("store "+s.Name, []string{s.Region}); err != nil {
				return err
			}
		}
		if s.Address != "" {
			m, err := parseAddress(s.Address)
			if err != nil {
				return invalid("store %s: %v", s.Name, err)
			}
			m.store = i
			c.matches = append(c.matches, m)
		}
	}
	c.grants = map[string]map[string]bool{}
	for _, a := range c.Applications {
		if a.Name == "" || len(a.Name) > 200 {
			return invalid("application name %q: want 1-200 characters", a.Name)
		}
		if c.grants[a.Name] != nil {
			return invalid("application %q is listed twice", a.Name)
		}
		if err := c.knownClasses("application "+a.Name, a.Classes); err != nil {
			return err
		}
		g := map[string]bool{}
		for _, cl := range a.Classes {
			g[cl] = true
		}
		c.grants[a.Name] = g
	}
	for node, region := range c.Nodes {
		if node == "" || len(node) > 253 {
			return invalid("node name %q: want 1-253 characters", node)
		}
		if err := checkRegions("node "+node, []string{region}); err != nil {
			return err
		}
	}
	return nil
}

func (c *Catalogue) knownClasses(what string, classes []string) error {
	if len(classes) == 0 {
		return invalid("%s holds no class", what)
	}
	for _, cl := range classes {
		if c.classes[cl] == nil {
			return invalid("%s: unknown class %q", what, cl)
		}
	}
	return nil
}

func checkName(what, n string) error {
	if !nameRE.MatchString(n) {
		return invalid("%s name %q: want 1-64 lower-case letters, digits, '.', '_' or '-'", what, n)
	}
	return nil
}

func checkRegions(what string, rs []string) error {
	for _, r := range rs {
		if r == "" || len(r) > 64 || strings.ContainsAny(r, " \t\n/,") {
			return invalid("%s: region %q: want 1-64 characters without spaces, ',' or '/'", what, r)
		}
	}
	return nil
}

// ParseRetention reads "" (none), "90d", "7y" or a Go duration ("720h").
func ParseRetention(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	var n int
	var unit string
	if _, err := fmt.Sscanf(s, "%d%s", &n, &unit); err == nil && n > 0 && n < 1000 {
		switch unit {
		case "d":
			return time.Duration(n) * 24 * time.Hour, nil
		case "y":
			return time.Duration(n) * 365 * 24 * time.Hour, nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("retention %q: want a count of days (90d), years (7y) or a duration (720h)", s)
	}
	return d, nil
}

// parseAddress reads a store's address.
func parseAddress(a string) (storeMatch, error) {
	host, port := a, ""
	if h, p, ok := strings.Cut(a, "]:"); ok && strings.HasPrefix(a, "[") { // [v6]:port
		host, port = h[1:], p
	} else if i := strings.LastIndexByte(a, ':'); i >= 0 && strings.Count(a, ":") == 1 {
		host, port = a[:i], a[i+1:]
	}
	if port != "" && !portRE.MatchString(port) {
		return storeMatch{}, fmt.Errorf("address %q: bad port %q", a, port)
	}
	if p, err := netip.ParsePrefix(host); err == nil {
		return storeMatch{prefix: p.Masked(), port: port}, nil
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		return storeMatch{prefix: netip.PrefixFrom(ip, ip.BitLen()), port: port}, nil
	}
	if host == "" || len(host) > 253 || strings.ContainsAny(host, " /@") {
		return storeMatch{}, fmt.Errorf("address %q: want host:port, host, an IP or an IP prefix", a)
	}
	return storeMatch{host: strings.ToLower(strings.TrimSuffix(host, ".")), port: port}, nil
}

// StoreAt returns the data store an observed destination ("ip:port" or
// "host:port") belongs to; a longer IP prefix wins over a shorter one.
func (c *Catalogue) StoreAt(dest string) (DataStore, bool) {
	host, port := dest, ""
	if i := strings.LastIndexByte(dest, ':'); i >= 0 {
		host, port = strings.Trim(dest[:i], "[]"), dest[i+1:]
	}
	ip, ipErr := netip.ParseAddr(host)
	best, bits := -1, -1
	for _, m := range c.matches {
		if m.port != "" && m.port != port {
			continue
		}
		switch {
		case m.prefix.IsValid():
			if ipErr == nil && m.prefix.Contains(ip.Unmap()) && m.prefix.Bits() > bits {
				best, bits = m.store, m.prefix.Bits()
			}
		case strings.EqualFold(m.host, strings.TrimSuffix(host, ".")) && bits < 1<<10:
			best, bits = m.store, 1<<10 // a name match is exact
		}
	}
	if best < 0 {
		return DataStore{}, false
	}
	return c.Stores[best], true
}

// ClassRegions is where data of class may be processed (nil: anywhere),
// narrowed by every regulation that governs it; known is false for a
// class the catalogue does not define. (secretstore.Catalogue)
func (c *Catalogue) ClassRegions(class string) (regions []string, known bool) {
	ci := c.classes[class]
	if ci == nil {
		return nil, false
	}
	return ci.regions, true
}

// Granted reports whether application is granted class.
// (secretstore.Grants)
func (c *Catalogue) Granted(application, class string) bool { return c.grants[application][class] }

// Governing lists the regulations that govern class.
func (c *Catalogue) Governing(class string) []string {
	if ci := c.classes[class]; ci != nil {
		return ci.regulations
	}
	return nil
}

// Retention is the shortest retention the regulations of class ask for
// (0: none).
func (c *Catalogue) Retention(class string) time.Duration {
	if ci := c.classes[class]; ci != nil {
		return ci.retention
	}
	return 0
}

// NodeRegion is the region the catalogue assigns to node ("" unknown).
func (c *Catalogue) NodeRegion(node string) string { return c.Nodes[node] }

// narrow is the regions in both a and b; nil means anywhere, so narrowing
// by nil changes nothing, and a result with nothing left is empty, not nil.
func narrow(a, b []string) []string {
	switch {
	case b == nil || len(b) == 0:
		return a
	case a == nil:
		return slices.Clone(b)
	}
	out := []string{}
	for _, r := range a {
		if slices.Contains(b, r) {
			out = append(out, r)
		}
	}
	return out
}

func nilIfEmpty(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return slices.Clone(s)
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
