package agentproto

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Paths of the two routes.
const (
	EventsPath    = "/api/v1/agent/events"
	HeartbeatPath = "/api/v1/agent/heartbeat"
)

// Limits of a request, checked by Validate on the server; the agent's
// sender keeps under them.
const (
	MaxEvents     = 500   // events in one batch
	MaxContainers = 2000  // containers in one heartbeat
	MaxField      = 4096  // bytes of a path, an error or a label value
	MaxName       = 253   // bytes of a node, spool, container id, namespace, label key
	MaxLabels     = 64    // labels of one container
	MaxPackages   = 20000 // host packages in one heartbeat
)

// Verdicts of a drifted exec.
const (
	VerdictRefused  = "refused"  // the exec failed with EPERM (prevent)
	VerdictReported = "reported" // the exec ran and was reported (detect)
)

// Enforcement states a heartbeat reports.
const (
	StateEnforcingFanotify = "enforcing (fanotify)"
	StateEnforcingBPFLSM   = "enforcing (bpf-lsm)"
	StateDetectingOnly     = "detecting-only"
	StateBroken            = "broken"
	StateOff               = "off"
)

// Event is one drifted exec. Seq is the agent's sequence number: it grows
// by one per event of a spool, across restarts, and (Node, Spool, Seq)
// names the event for good, so a batch sent twice is stored once.
type Event struct {
	Seq       uint64    `json:"seq"`
	Time      time.Time `json:"time"`
	Verdict   string    `json:"verdict"`
	Reason    string    `json:"reason"`
	PID       int       `json:"pid"`
	Path      string    `json:"path"`
	Digest    string    `json:"digest,omitempty"` // content that was to run
	Container string    `json:"container"`
	Namespace string    `json:"namespace"`
	Image     string    `json:"image"` // manifest digest
	Error     string    `json:"error,omitempty"`
	// Tree is the process that called exec and its ancestors, nearest
	// first ("42 sh < 7 probe").
	Tree string `json:"tree,omitempty"`
}

// Batch is the body of POST /api/v1/agent/events: events of one spool in
// ascending Seq.
type Batch struct {
	Node   string  `json:"node"`
	Spool  string  `json:"spool"` // the spool's id: a new spool starts its sequence again
	Events []Event `json:"events"`
	// Dropped counts events the spool dropped (full) since it was made.
	Dropped uint64 `json:"dropped"`
}

// Container is a running container a heartbeat reports.
type Container struct {
	ID        string            `json:"id"`
	Namespace string            `json:"namespace"`
	Image     string            `json:"image"` // manifest digest
	Labels    map[string]string `json:"labels,omitempty"`
	// Started is when the container's task started; zero when unknown.
	Started time.Time `json:"started,omitzero"`
	// Allowlist says where the agent's allowlist for it came from:
	// "server" (the server's scan), "server-cache" (an earlier answer kept
	// on disk), "inventory-dir" or "content-store" (made on the node).
	Allowlist string `json:"allowlist,omitempty"`
	// Gap says why the agent's marks cannot hold every exec of the
	// container (fanotify: its processes can make mount namespaces of
	// their own); empty when none is known.
	Gap string `json:"gap,omitempty"`
	// Ran is what ran in it since the agent watched it (ran.go), most
	// execs first; RanDropped counts the execs of programs past the bound,
	// not listed.
	Ran        []Ran  `json:"ran,omitempty"`
	RanDropped uint64 `json:"ranDropped,omitempty"`
}

// CRI labels the kubelet puts on a container, which name its pod.
const (
	LabelPodName      = "io.kubernetes.pod.name"
	LabelPodNamespace = "io.kubernetes.pod.namespace"
	LabelPodUID       = "io.kubernetes.pod.uid"
	LabelContainer    = "io.kubernetes.container.name"
)

// Package is one package installed on the node itself (its host
// inventory), with the fields of an inventory's package that matching
// needs: its type ("deb", "apk", "rpm", "go-module"...), name, version
// and the source package a binary package was built from.
type Package struct {
	Type          string `json:"type"`
	Name          string `json:"name"`
	Version       string `json:"version"`
	Source        string `json:"source,omitempty"`
	SourceVersion string `json:"sourceVersion,omitempty"`
}

// Distro names the node's operating system (os-release ID and
// VERSION_ID), which the ecosystem of its distribution packages follows.
type Distro struct {
	ID        string `json:"id"`
	VersionID string `json:"versionID,omitempty"`
}

// Heartbeat is the body of POST /api/v1/agent/heartbeat.
type Heartbeat struct {
	Node        string      `json:"node"`
	Mode        string      `json:"mode"`
	State       string      `json:"state"`
	Reason      string      `json:"reason,omitempty"` // why detecting-only or broken
	Containers  []Container `json:"containers"`
	SpoolEvents uint64      `json:"spoolEvents"` // events waiting to be sent
	SpoolBytes  int64       `json:"spoolBytes"`
	Dropped     uint64      `json:"dropped"`
	Version     string      `json:"version,omitempty"`
	// Kernel is the node's kernel release (uname -r), Region where it
	// runs (a label the operator gives the agent), Packages the host's
	// own inventory; all optional.
	Kernel   string    `json:"kernel,omitempty"`
	Region   string    `json:"region,omitempty"`
	Distro   *Distro   `json:"distro,omitempty"`
	Packages []Package `json:"packages,omitempty"`
}

// ErrInvalid is the cause of every validation error.
var ErrInvalid = errors.New("invalid agent request")

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// name checks an identifier: non-empty, at most MaxName bytes, printable
// ASCII with no spaces.
func name(what, s string) error {
	if s == "" {
		return invalid("%s is empty", what)
	}
	if len(s) > MaxName {
		return invalid("%s is longer than %d bytes", what, MaxName)
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return invalid("%s %q has a character other than printable ASCII", what, s)
		}
	}
	return nil
}

func field(what, s string) error {
	if len(s) > MaxField {
		return invalid("%s is longer than %d bytes", what, MaxField)
	}
	if strings.ContainsRune(s, 0) {
		return invalid("%s contains a NUL byte", what)
	}
	return nil
}

// Validate checks a batch strictly: a node and spool, 1 to MaxEvents
// events in strictly ascending Seq (from 1), known verdicts, bounded
// fields.
func (b *Batch) Validate() error {
	if err := name("node", b.Node); err != nil {
		return err
	}
	if err := name("spool", b.Spool); err != nil {
		return err
	}
	if len(b.Events) == 0 || len(b.Events) > MaxEvents {
		return invalid("a batch holds 1 to %d events, not %d", MaxEvents, len(b.Events))
	}
	var last uint64
	for i := range b.Events {
		e := &b.Events[i]
		if e.Seq == 0 || e.Seq <= last {
			return invalid("event %d: seq %d is not above %d", i, e.Seq, last)
		}
		last = e.Seq
		if e.Verdict != VerdictRefused && e.Verdict != VerdictReported {
			return invalid("event seq %d: verdict %q (want refused or reported)", e.Seq, e.Verdict)
		}
		if e.Time.IsZero() {
			return invalid("event seq %d: no time", e.Seq)
		}
		if err := name("container", e.Container); err != nil {
			return fmt.Errorf("event seq %d: %w", e.Seq, err)
		}
		for _, f := range [][2]string{{"reason", e.Reason}, {"path", e.Path}, {"digest", e.Digest}, {"namespace", e.Namespace}, {"image", e.Image}, {"error", e.Error}, {"tree", e.Tree}} {
			if err := field(f[0], f[1]); err != nil {
				return fmt.Errorf("event seq %d: %w", e.Seq, err)
			}
		}
	}
	return nil
}

// Validate checks a heartbeat strictly.
func (h *Heartbeat) Validate() error {
	if err := name("node", h.Node); err != nil {
		return err
	}
	switch h.State {
	case StateEnforcingFanotify, StateEnforcingBPFLSM, StateDetectingOnly, StateBroken, StateOff:
	default:
		return invalid("state %q (want %q, %q, %q, %q or %q)", h.State, StateEnforcingFanotify, StateEnforcingBPFLSM, StateDetectingOnly, StateBroken, StateOff)
	}
	switch h.Mode {
	case "off", "detect", "prevent":
	default:
		return invalid("mode %q (want off, detect or prevent)", h.Mode)
	}
	if len(h.Containers) > MaxContainers {
		return invalid("%d containers, at most %d", len(h.Containers), MaxContainers)
	}
	for _, f := range [][2]string{{"reason", h.Reason}, {"version", h.Version}, {"kernel", h.Kernel}, {"region", h.Region}} {
		if err := field(f[0], f[1]); err != nil {
			return err
		}
	}
	if err := validateHost(h.Distro, h.Packages); err != nil {
		return err
	}
	ran := 0
	for i, c := range h.Containers {
		if err := name("container id", c.ID); err != nil {
			return fmt.Errorf("container %d: %w", i, err)
		}
		if err := field("namespace", c.Namespace); err != nil {
			return fmt.Errorf("container %s: %w", c.ID, err)
		}
		if err := field("image", c.Image); err != nil {
			return fmt.Errorf("container %s: %w", c.ID, err)
		}
		if len(c.Labels) > MaxLabels {
			return invalid("container %s: %d labels, at most %d", c.ID, len(c.Labels), MaxLabels)
		}
		for k, v := range c.Labels {
			if err := name("label key", k); err != nil {
				return fmt.Errorf("container %s: %w", c.ID, err)
			}
			if err := field("label "+k, v); err != nil {
				return fmt.Errorf("container %s: %w", c.ID, err)
			}
		}
		if ran += len(c.Ran); ran > MaxRanTotal {
			return invalid("more than %d programs ran listed in one heartbeat", MaxRanTotal)
		}
		if err := validateRan(c.ID, c.Ran); err != nil {
			return err
		}
	}
	return nil
}

// HostInventoryPath is the route of a node's own inventory.
const HostInventoryPath = "/api/v1/agent/host-inventory"

// MaxRunning bounds the running digests of one host inventory.
const MaxRunning = MaxContainers

// HostInventory is the body of POST /api/v1/agent/host-inventory: the
// packages of the node's own root filesystem, cataloged by the agent with
// the image catalogers (at start and daily), and which image digests run
// on the node, in which containers.
type HostInventory struct {
	Node      string    `json:"node"`
	Generated time.Time `json:"generated"`
	Kernel    string    `json:"kernel,omitempty"`
	Distro    *Distro   `json:"distro,omitempty"`
	Packages  []Package `json:"packages"`
	// Running maps each image digest running on the node to the ids of
	// its containers.
	Running map[string][]string `json:"running"`
	// Warnings are the catalogers' problems that did not stop the
	// inventory, bounded.
	Warnings []string `json:"warnings,omitempty"`
}

// Validate checks a host inventory strictly.
func (h *HostInventory) Validate() error {
	if err := name("node", h.Node); err != nil {
		return err
	}
	if h.Generated.IsZero() {
		return invalid("no generation time")
	}
	if err := field("kernel", h.Kernel); err != nil {
		return err
	}
	if err := validateHost(h.Distro, h.Packages); err != nil {
		return err
	}
	if len(h.Running) > MaxRunning {
		return invalid("%d running digests, at most %d", len(h.Running), MaxRunning)
	}
	total := 0
	for d, ids := range h.Running {
		if !strings.HasPrefix(d, "sha256:") || len(d) != 71 || strings.Trim(d[7:], "0123456789abcdef") != "" {
			return invalid("running digest %.80q: want sha256: and 64 lowercase hex digits", d)
		}
		total += len(ids)
		if len(ids) == 0 || total > MaxContainers {
			return invalid("running digest %s: 1 to %d containers in all", d, MaxContainers)
		}
		for _, id := range ids {
			if err := name("container id", id); err != nil {
				return fmt.Errorf("running digest %s: %w", d, err)
			}
		}
	}
	if len(h.Warnings) > 100 {
		return invalid("%d warnings, at most 100", len(h.Warnings))
	}
	for _, w := range h.Warnings {
		if err := field("warning", w); err != nil {
			return err
		}
	}
	return nil
}

// validateHost checks a host's distro and packages (a heartbeat's or a
// host inventory's).
func validateHost(d *Distro, pkgs []Package) error {
	if len(pkgs) > MaxPackages {
		return invalid("%d host packages, at most %d", len(pkgs), MaxPackages)
	}
	if d != nil {
		if err := name("distro id", d.ID); err != nil {
			return err
		}
		if err := field("distro version", d.VersionID); err != nil {
			return err
		}
	}
	for i, p := range pkgs {
		if err := name("package type", p.Type); err != nil {
			return fmt.Errorf("host package %d: %w", i, err)
		}
		if p.Name == "" || p.Version == "" {
			return invalid("host package %d: empty name or version", i)
		}
		for _, f := range [][2]string{{"package name", p.Name}, {"package version", p.Version}, {"source", p.Source}, {"source version", p.SourceVersion}} {
			if err := field(f[0], f[1]); err != nil {
				return fmt.Errorf("host package %d: %w", i, err)
			}
		}
	}
	return nil
}
