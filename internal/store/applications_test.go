package store

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"
)

func TestApplications(t *testing.T) { eachBackend(t, testApplications) }

func testApplications(t *testing.T, newStore storeFactory) {
	ctx := context.Background()
	s, c := newStore(t)
	created := c.Now()
	got, err := s.PutApplication(ctx, Application{Name: "shop", Team: "payments", Contact: "pay@example.com",
		Repositories: []string{"shop/*"}})
	if err != nil {
		t.Fatal(err)
	}
	want := Application{ID: got.ID, Name: "shop", Team: "payments", Contact: "pay@example.com",
		Lifecycle: LifecycleActive, Repositories: []string{"shop/*"}, Labels: map[string]string{},
		Created: created, Updated: created}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("PutApplication = %+v\nwant             %+v", got, want)
	}

	// Replacing keeps the id and created time.
	c.Advance(time.Hour)
	got, err = s.PutApplication(ctx, Application{Name: "shop", Team: "checkout", Lifecycle: LifecycleDeprecated,
		Labels: map[string]string{"app": "shop"}})
	if err != nil {
		t.Fatal(err)
	}
	want = Application{ID: want.ID, Name: "shop", Team: "checkout", Lifecycle: LifecycleDeprecated,
		Repositories: []string{}, Labels: map[string]string{"app": "shop"},
		Created: created, Updated: created.Add(time.Hour)}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("replaced = %+v\nwant       %+v", got, want)
	}
	if read, err := s.Application(ctx, "shop"); err != nil || !reflect.DeepEqual(read, want) {
		t.Errorf("Application = %+v, %v", read, err)
	}

	// Listed in byte order on both backends (PostgreSQL's collation would
	// put "api" before "Zed").
	for _, n := range []string{"api", "Zed", "_x"} {
		if _, err := s.PutApplication(ctx, Application{Name: n, Repositories: []string{n}}); n == "_x" {
			if err == nil {
				t.Errorf("PutApplication(%q) accepted a name starting with '_'", n)
			}
		} else if err != nil {
			t.Fatal(err)
		}
	}
	list, err := s.ListApplications(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, a := range list {
		names = append(names, a.Name)
	}
	if !reflect.DeepEqual(names, []string{"Zed", "api", "shop"}) {
		t.Errorf("ListApplications names = %v", names)
	}

	if err := s.DeleteApplication(ctx, "api"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteApplication(ctx, "api"); !errors.Is(err, ErrNotFound) {
		t.Errorf("deleting twice: %v, want ErrNotFound", err)
	}
	if _, err := s.Application(ctx, "api"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Application after delete: %v, want ErrNotFound", err)
	}
}

func TestApplicationValidate(t *testing.T) {
	ok := Application{Name: "a", Lifecycle: LifecycleActive, Repositories: []string{"x/**"}}
	if err := ok.Validate(); err != nil {
		t.Errorf("Validate(%+v) = %v", ok, err)
	}
	for _, bad := range []Application{
		{Name: "", Lifecycle: LifecycleActive, Repositories: []string{"x"}},
		{Name: "a/b", Lifecycle: LifecycleActive, Repositories: []string{"x"}},
		{Name: "a", Lifecycle: "retired", Repositories: []string{"x"}},
		{Name: "a", Lifecycle: LifecycleActive},
		{Name: "a", Lifecycle: LifecycleActive, Repositories: []string{"x["}},
		{Name: "a", Lifecycle: LifecycleActive, Repositories: []string{"x**"}},
		{Name: "a", Lifecycle: LifecycleActive, Repositories: []string{" x"}},
		{Name: "a", Lifecycle: LifecycleActive, Labels: map[string]string{"": "v"}},
	} {
		if err := bad.Validate(); err == nil {
			t.Errorf("Validate(%+v) = nil, want an error", bad)
		}
	}
}

func TestMatchRepository(t *testing.T) {
	for _, tc := range []struct {
		pattern, repo string
		want          bool
	}{
		{"shop/*", "registry.example.com/shop/api", true},
		{"shop/*", "shop/api", true},
		{"shop/*", "127.0.0.1:5000/shop/api", true},
		{"shop/*", "localhost/shop/api", true},
		{"shop/*", "registry.example.com/shop/api/v2", false},
		{"shop/*", "team/shop/api", false}, // "team" is not a host
		{"shop/**", "r.example/shop/api/v2", true},
		{"shop/**", "r.example/shop", true},
		{"**/api", "r.example/a/b/api", true},
		{"**", "r.example/anything/at/all", true},
		{"r.example/shop/*", "r.example/shop/web", true},
		{"r.example/shop/*", "other.example/shop/web", false},
		{"shop/ap?", "r.example/shop/api", true},
		{"shop/[a-c]*", "r.example/shop/web", false},
		{"shop", "r.example/shopping", false},
	} {
		if got := MatchRepository(tc.pattern, tc.repo); got != tc.want {
			t.Errorf("MatchRepository(%q, %q) = %v, want %v", tc.pattern, tc.repo, got, tc.want)
		}
	}
}

// An application named by a label the image carries wins over one whose
// pattern matches; among patterns the first by name wins.
func TestApplicationFor(t *testing.T) { eachBackend(t, testApplicationFor) }

func testApplicationFor(t *testing.T, newStore storeFactory) {
	ctx := context.Background()
	s, _ := newStore(t)
	for _, a := range []Application{
		{Name: "b-shop", Team: "shop", Repositories: []string{"shop/*"}},
		{Name: "c-shop-api", Team: "api", Repositories: []string{"shop/api"}},
		{Name: "z-billing", Team: "billing", Labels: map[string]string{"team": "billing", "tier": "1"}},
	} {
		if _, err := s.PutApplication(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		img  Image
		want string
	}{
		{Image{Repository: "r.example/shop/api"}, "b-shop"},
		{Image{Repository: "r.example/shop/web", Labels: map[string]string{"team": "billing", "tier": "1"}}, "z-billing"},
		{Image{Repository: "r.example/shop/web", Labels: map[string]string{"team": "billing"}}, "b-shop"},
		{Image{Repository: "r.example/other", Labels: map[string]string{"team": "billing", "tier": "2"}}, ""},
		{Image{Repository: "r.example/other"}, ""},
	} {
		a, ok, err := s.ApplicationFor(ctx, tc.img)
		if err != nil {
			t.Fatal(err)
		}
		name := ""
		if ok {
			name = a.Name
		}
		if name != tc.want || ok != (tc.want != "") {
			t.Errorf("ApplicationFor(%s %v) = %q, %v; want %q", tc.img.Repository, tc.img.Labels, name, ok, tc.want)
		}
	}
}
