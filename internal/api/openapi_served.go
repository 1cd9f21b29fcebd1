package api

import (
	"encoding/json"
	"sync"
)

// servedOpenAPI is openapi.json as GET /api/v1/openapi.json serves it:
// every operation that requires a token also declares 429, since the
// per-token rate limit and in-flight cap (limits.go) apply to every
// authenticated route. It is added here rather than written into each
// operation, so that a route added later cannot leave it out. The
// document is re-encoded (keys in sorted order); should it not decode,
// it is served as written.
var servedOpenAPI = sync.OnceValue(func() []byte {
	var doc map[string]any
	if err := json.Unmarshal(openAPIDoc, &doc); err != nil {
		return openAPIDoc
	}
	paths, _ := doc["paths"].(map[string]any)
	for _, item := range paths {
		ops, _ := item.(map[string]any)
		for _, o := range ops {
			op, _ := o.(map[string]any)
			sec, _ := op["security"].([]any)
			resp, _ := op["responses"].(map[string]any)
			if len(sec) == 0 || resp == nil {
				continue
			}
			if _, ok := resp["429"]; !ok {
				resp["429"] = map[string]any{"$ref": "#/components/responses/TooManyRequests"}
			}
		}
	}
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return openAPIDoc
	}
	return b
})
