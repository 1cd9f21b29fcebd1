package governance

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Flow is observed access: connections from one workload to one
// destination, as its node's agent reported them, with what the server
// resolved: the workload's service (owner application of its image) and
// region (its node's).
type Flow struct {
	Service     string    `json:"service"` // "" when no application owns the image
	Node        string    `json:"node"`
	Container   string    `json:"container"`
	Image       string    `json:"image,omitempty"`
	Region      string    `json:"region"` // "" unknown
	Destination string    `json:"destination"`
	Store       string    `json:"store,omitempty"` // the data store matched, "" none
	Count       int64     `json:"count"`
	First       time.Time `json:"first"`
	Last        time.Time `json:"last"`
}

// Violation kinds.
const (
	Ungranted = "ungranted" // the service has no grant of a class the store holds
	Residency = "residency" // the access ran outside the class's allowed regions
)

// Violation is inappropriate access: one flow, one class, one reason.
type Violation struct {
	Kind        string    `json:"kind"`
	Service     string    `json:"service"`
	Store       string    `json:"store"`
	Class       string    `json:"class"`
	Regulations []string  `json:"regulations"`
	Node        string    `json:"node"`
	Container   string    `json:"container"`
	Region      string    `json:"region"`
	Allowed     []string  `json:"allowedRegions,omitempty"`
	Last        time.Time `json:"last"`
	Detail      string    `json:"detail"`
}

// Key names a violation for deduplication: one alert per (kind, service,
// store, class, region).
func (v Violation) Key() string {
	return strings.Join([]string{v.Kind, v.Service, v.Store, v.Class, v.Region}, "\x00")
}

// Check matches f to its data store (f.Store is set when found) and
// returns every violation of it.
func (c *Catalogue) Check(f *Flow) []Violation {
	st, ok := c.StoreAt(f.Destination)
	if !ok {
		f.Store = ""
		return nil
	}
	f.Store = st.Name
	var out []Violation
	for _, class := range st.Classes {
		v := Violation{Service: f.Service, Store: st.Name, Class: class, Regulations: c.Governing(class),
			Node: f.Node, Container: f.Container, Region: f.Region, Last: f.Last}
		if f.Service == "" || !c.Granted(f.Service, class) {
			v.Kind = Ungranted
			who := f.Service
			if who == "" {
				who = "container " + f.Container + " (no owner application)"
			}
			v.Detail = fmt.Sprintf("%s reached %s (%s) without a grant of %s", who, st.Name, f.Destination, class)
			out = append(out, v)
		}
		if allowed, _ := c.ClassRegions(class); allowed != nil && !slices.Contains(allowed, f.Region) {
			v.Kind, v.Allowed = Residency, allowed
			where := f.Region
			if where == "" {
				where = "an unknown region"
			}
			v.Detail = fmt.Sprintf("%s data of %s processed on node %s in %s, allowed: %s", class, st.Name, f.Node, where, strings.Join(allowed, ", "))
			out = append(out, v)
		}
	}
	return out
}

// SecretClasses is a released-to-workloads secret and its data classes
// (secretstore's listing), for the report's "can reach".
type SecretClasses struct {
	Name    string
	Classes []string
	// ReleasedTo are the services (owner applications, else SPIFFE IDs)
	// it was released to since the server started.
	ReleasedTo []string
}

// Report answers, per regulation and class: which services can reach the
// data (granted, or through a secret), which did (observed), where, and
// which access was inappropriate.
type Report struct {
	Generated  time.Time   `json:"generated"`
	Regulation string      `json:"regulation,omitempty"` // the filter, "" all
	Sections   []Section   `json:"sections"`
	Violations []Violation `json:"violations"`
	Flows      int         `json:"flows"`     // observed flows considered
	Unmatched  int         `json:"unmatched"` // flows to no catalogued store
}

// Section is one (regulation, class).
type Section struct {
	Regulation string   `json:"regulation"`
	Title      string   `json:"title"`
	Class      string   `json:"class"`
	Regions    []string `json:"allowedRegions"` // nil: anywhere
	Retention  string   `json:"retention,omitempty"`
	Stores     []string `json:"stores"`
	Granted    []string `json:"granted"` // applications granted the class
	Secrets    []string `json:"secrets"` // secrets holding the class
	// SecretsReleasedTo are, per secret, the services it was released to.
	SecretsReleasedTo map[string][]string `json:"secretsReleasedTo,omitempty"`
	Observed          []Access            `json:"observed"`
}

// Access is observed access of one service to one store from one region.
type Access struct {
	Service     string    `json:"service"`
	Store       string    `json:"store"`
	Region      string    `json:"region"`
	Nodes       []string  `json:"nodes"`
	Count       int64     `json:"count"`
	Last        time.Time `json:"last"`
	Granted     bool      `json:"granted"`
	InResidency bool      `json:"inResidency"`
}

// Build makes the report of flows and secrets under c, for one regulation
// ("" every regulation).
func (c *Catalogue) Build(flows []Flow, secrets []SecretClasses, regulation string, now time.Time) (Report, error) {
	if regulation != "" {
		if _, ok := Regulations[regulation]; !ok {
			return Report{}, invalid("unknown regulation %q (known: %s)", regulation, strings.Join(sortedKeys(Regulations), ", "))
		}
	}
	r := Report{Generated: now.UTC(), Regulation: regulation, Sections: []Section{}, Violations: []Violation{}, Flows: len(flows)}
	type akey struct{ service, store, region string }
	byClass := map[string]map[akey]*Access{}
	seen := map[string]int{}
	for i := range flows {
		f := flows[i]
		vs := c.Check(&f)
		if f.Store == "" {
			r.Unmatched++
			continue
		}
		st, _ := c.StoreAt(f.Destination)
		for _, class := range st.Classes {
			m := byClass[class]
			if m == nil {
				m = map[akey]*Access{}
				byClass[class] = m
			}
			k := akey{f.Service, f.Store, f.Region}
			a := m[k]
			if a == nil {
				allowed, _ := c.ClassRegions(class)
				a = &Access{Service: f.Service, Store: f.Store, Region: f.Region, Granted: f.Service != "" && c.Granted(f.Service, class),
					InResidency: allowed == nil || slices.Contains(allowed, f.Region)}
				m[k] = a
			}
			a.Count += f.Count
			a.Last = maxTime(a.Last, f.Last)
			if !slices.Contains(a.Nodes, f.Node) {
				a.Nodes = append(a.Nodes, f.Node)
			}
		}
		for _, v := range vs {
			if regulation != "" && !slices.Contains(v.Regulations, regulation) {
				continue
			}
			if i, ok := seen[v.Key()]; ok {
				r.Violations[i].Last = maxTime(r.Violations[i].Last, v.Last)
				continue
			}
			seen[v.Key()] = len(r.Violations)
			r.Violations = append(r.Violations, v)
		}
	}
	for _, reg := range c.Regulations {
		if regulation != "" && reg.Name != regulation {
			continue
		}
		for _, class := range reg.Classes {
			allowed, _ := c.ClassRegions(class)
			s := Section{Regulation: reg.Name, Title: Regulations[reg.Name], Class: class, Regions: allowed,
				Stores: []string{}, Granted: []string{}, Secrets: []string{}, Observed: []Access{}}
			if d := c.Retention(class); d > 0 {
				s.Retention = fmt.Sprintf("%dd", int(d/(24*time.Hour)))
			}
			for _, st := range c.Stores {
				if slices.Contains(st.Classes, class) {
					s.Stores = append(s.Stores, st.Name)
				}
			}
			for _, a := range c.Applications {
				if slices.Contains(a.Classes, class) {
					s.Granted = append(s.Granted, a.Name)
				}
			}
			for _, sc := range secrets {
				if slices.Contains(sc.Classes, class) {
					s.Secrets = append(s.Secrets, sc.Name)
					if len(sc.ReleasedTo) > 0 {
						if s.SecretsReleasedTo == nil {
							s.SecretsReleasedTo = map[string][]string{}
						}
						s.SecretsReleasedTo[sc.Name] = sc.ReleasedTo
					}
				}
			}
			for _, a := range byClass[class] {
				slices.Sort(a.Nodes)
				s.Observed = append(s.Observed, *a)
			}
			slices.SortFunc(s.Observed, func(a, b Access) int {
				return cmp.Or(cmp.Compare(a.Store, b.Store), cmp.Compare(a.Service, b.Service), cmp.Compare(a.Region, b.Region))
			})
			slices.Sort(s.Granted)
			slices.Sort(s.Secrets)
			r.Sections = append(r.Sections, s)
		}
	}
	slices.SortFunc(r.Violations, func(a, b Violation) int {
		return cmp.Or(cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Store, b.Store), cmp.Compare(a.Service, b.Service),
			cmp.Compare(a.Class, b.Class), cmp.Compare(a.Region, b.Region))
	})
	return r, nil
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
