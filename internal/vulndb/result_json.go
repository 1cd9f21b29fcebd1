package vulndb

import (
	"encoding/json"
	"math"
	"time"
)

// resultJSON is Result as encoded: the duration in seconds, not in Go's
// nanoseconds.
type resultJSON struct {
	plainResult
	DurationSeconds float64 `json:"durationSeconds"`
}

type plainResult Result

// MarshalJSON encodes the duration as durationSeconds (millisecond
// precision).
func (r Result) MarshalJSON() ([]byte, error) {
	return json.Marshal(resultJSON{plainResult(r), math.Round(r.Duration.Seconds()*1000) / 1000})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (r *Result) UnmarshalJSON(b []byte) error {
	var v resultJSON
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*r = Result(v.plainResult)
	r.Duration = time.Duration(v.DurationSeconds * float64(time.Second))
	return nil
}
