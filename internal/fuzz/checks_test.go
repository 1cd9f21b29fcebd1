package fuzz

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/bulwark-sec/bulwark/internal/fuzz/fuzztest"
)

func TestCheckRules(t *testing.T) {
	spec, err := Parse([]byte(fuzztest.Spec))
	if err != nil {
		t.Fatal(err)
	}
	op := spec.byID["getItem"]
	c := &checker{slow: time.Second, sent: map[string]bool{"sent@shop.example": true}}
	jsonCT := map[string][]string{"Content-Type": {"application/json"}}
	item := []byte(`{"id": 1, "name": "a"}`)
	for name, tc := range map[string]struct {
		ex   exchange
		want []string // rule/key
	}{
		"clean":         {exchange{status: 200, header: jsonCT, body: item}, nil},
		"declared 404":  {exchange{status: 404, header: jsonCT, body: []byte(`{"error": "no"}`)}, nil},
		"500":           {exchange{status: 500, body: []byte("oops")}, []string{"server-error/500"}},
		"dropped":       {exchange{err: errors.New("EOF")}, []string{"server-error/dropped"}},
		"timeout":       {exchange{err: errors.New("deadline"), timeout: true}, []string{"slow-response/timeout"}},
		"slow":          {exchange{status: 200, header: jsonCT, body: item, elapsed: 2 * time.Second}, []string{"slow-response/slow"}},
		"undeclared":    {exchange{status: 409, header: jsonCT, body: []byte(`{}`)}, []string{"undeclared-status/409"}},
		"missing field": {exchange{status: 200, header: jsonCT, body: []byte(`{"id": 1}`)}, []string{"schema-mismatch/200"}},
		"not json":      {exchange{status: 200, header: map[string][]string{"Content-Type": {"text/html"}}, body: []byte("<p>")}, []string{"schema-mismatch/200"}},
		"go panic":      {exchange{status: 400, header: jsonCT, body: []byte("{\"error\": \"x\"}\n\ngoroutine 1 [running]:\nmain.main()")}, []string{"schema-mismatch/400", "stack-trace/trace"}},
		"python":        {exchange{status: 400, header: jsonCT, body: []byte(`{"error": "Traceback (most recent call last):"}`)}, []string{"stack-trace/trace"}},
		"key in header": {exchange{status: 200, header: map[string][]string{"Content-Type": {"application/json"}, "X-Debug": {"aws_access_key_id=" + fuzztest.AWSKey}}, body: item}, []string{"leaked-secret/aws-access-key-id"}},
		"ssn":           {exchange{status: 200, header: jsonCT, body: []byte(`{"id": 1, "name": "536-90-4399"}`)}, []string{"data-class/us-ssn"}},
		"echo":          {exchange{status: 200, header: jsonCT, body: []byte(`{"id": 1, "name": "sent@shop.example"}`)}, nil},
	} {
		var got []string
		for _, h := range c.check(op, &tc.ex) {
			got = append(got, h.rule+"/"+h.key)
		}
		slices.Sort(got)
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: %v, want %v", name, got, tc.want)
		}
	}
}
