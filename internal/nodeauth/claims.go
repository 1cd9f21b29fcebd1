package nodeauth

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// claims are the claims of a JWT read without verifying it: only to refuse
// a token early (wrong audience, expired) and to bound the cache by its
// expiry once the cluster has vouched for it.
type claims struct {
	Exp int64    `json:"exp"`
	Aud audience `json:"aud"`
}

// audience is a JWT's aud: a string or a list of them.
type audience []string

func (a *audience) UnmarshalJSON(b []byte) error {
	var one string
	if json.Unmarshal(b, &one) == nil {
		*a = audience{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return errors.New("aud is neither a string nor a list of strings")
	}
	*a = many
	return nil
}

func (c claims) hasAudience(aud string) bool { return slices.Contains(c.Aud, aud) }

// parseClaims reads the payload of a compact JWS.
func parseClaims(token string) (claims, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return claims{}, errors.New("the token is neither a bwk_ API token nor a JWT")
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return claims{}, fmt.Errorf("decoding the token's payload: %w", err)
	}
	var c claims
	if err := json.Unmarshal(b, &c); err != nil {
		return claims{}, fmt.Errorf("decoding the token's claims: %w", err)
	}
	return c, nil
}
