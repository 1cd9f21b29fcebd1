package identity

import (
	"encoding/base64"
	"errors"
	"strings"
)

func jsonPart(tok string, i int) ([]byte, error) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return nil, errors.New("not a compact JWS")
	}
	return base64.RawURLEncoding.DecodeString(parts[i])
}
