package secretstore

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"

	"github.com/bulwark-sec/bulwark/internal/agentproto"
)

// Kinds of secret.
const (
	KindKV   = "kv"   // named string values, as in Vault KV
	KindFile = "file" // one file's bytes (a certificate, a keytab)
)

// Limits of a secret.
const (
	// MaxValue is the largest value in bytes (all keys and values of a kv
	// secret, or the file): Kubernetes' limit for a Secret.
	MaxValue = 1 << 20
	MaxName  = 200 // bytes of a name
	MaxKeys  = 256 // keys of a kv secret
)

// ErrInvalid is the cause of every error about a request's content: a
// bad name, an oversized value, a malformed policy, an unknown class.
var ErrInvalid = errors.New("invalid secret request")

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// nameRE is a secret's name (agentproto.SecretNameRE): no segment is "."
// or "..", so a name cannot climb out of a directory it is written to.
var nameRE = agentproto.SecretNameRE

// ValidName reports what is wrong with a secret's name.
func ValidName(name string) error {
	if len(name) > MaxName {
		return invalid("secret name is %d bytes, at most %d", len(name), MaxName)
	}
	if !nameRE.MatchString(name) {
		return invalid("secret name %q: want '/'-separated segments of letters, digits, '.', '_' or '-', each starting with a letter or digit (no '..', no leading '/')", name)
	}
	return nil
}

// Value is a secret's content: Data for a kv secret, File for a file.
type Value struct {
	Data map[string]string `json:"data,omitempty"`
	File []byte            `json:"file,omitempty"`
}

// validate checks v against kind and the size limits.
func (v Value) validate(kind string) error {
	switch kind {
	case KindKV:
		if len(v.Data) == 0 || v.File != nil {
			return invalid("a kv secret has data (key=value pairs) and no file")
		}
		if len(v.Data) > MaxKeys {
			return invalid("a kv secret has %d keys, at most %d", len(v.Data), MaxKeys)
		}
		size := 0
		for k, val := range v.Data {
			if k == "" || len(k) > 256 || !utf8.ValidString(k) {
				return invalid("key %s: want 1-256 bytes of UTF-8", strconv.QuoteToASCII(trunc(k)))
			}
			size += len(k) + len(val)
		}
		if size > MaxValue {
			return invalid("the value is %d bytes, at most %d", size, MaxValue)
		}
	case KindFile:
		if len(v.File) == 0 || v.Data != nil {
			return invalid("a file secret has a file and no data")
		}
		if len(v.File) > MaxValue {
			return invalid("the file is %d bytes, at most %d", len(v.File), MaxValue)
		}
	default:
		return invalid("unknown kind %q (want kv or file)", kind)
	}
	return nil
}

func trunc(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

func (v Value) encode() []byte {
	b, _ := json.Marshal(v)
	return b
}

func decodeValue(b []byte) (Value, error) {
	var v Value
	if err := json.Unmarshal(b, &v); err != nil {
		return v, fmt.Errorf("decoding a secret's value: %w", err)
	}
	return v, nil
}

// versionContext binds a version's ciphertext and wrapped key to its row.
func versionContext(name string, version int64) string {
	return "bulwark.secret/v1:" + name + "@" + strconv.FormatInt(version, 10)
}
