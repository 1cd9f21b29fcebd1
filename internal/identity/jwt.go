package identity

import (
	"errors"
	"fmt"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/spiffe/go-spiffe/v2/bundle/jwtbundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/jwtsvid"
)

// MaxAudiences bounds the audiences of one JWT-SVID.
const MaxAudiences = 16

// SignJWT issues a JWT-SVID for id with the given audiences (at least one),
// signed ES256 by the current JWT key, kid in the header.
func (a *Authority) SignJWT(id spiffeid.ID, audiences []string, ttl time.Duration) (string, time.Time, error) {
	if !id.MemberOf(a.td) {
		return "", time.Time{}, fmt.Errorf("signing a JWT-SVID for %q: not of trust domain %q", id, a.td.Name())
	}
	if len(audiences) == 0 || len(audiences) > MaxAudiences {
		return "", time.Time{}, fmt.Errorf("signing a JWT-SVID for %q: 1 to %d audiences, not %d", id, MaxAudiences, len(audiences))
	}
	for _, aud := range audiences {
		if aud == "" || len(aud) > 1024 {
			return "", time.Time{}, fmt.Errorf("signing a JWT-SVID for %q: an audience is empty or longer than 1024 bytes", id)
		}
	}
	if ttl <= 0 {
		ttl = a.jwtTTL
	}
	ttl = min(ttl, MaxTTL)
	now := a.now()
	key, err := a.jwtSigner(now)
	if err != nil {
		return "", time.Time{}, err
	}
	// A token never outlives its key's publication (NotAfter + one JWT TTL).
	exp := minTime(now.Add(ttl), key.NotAfter.Add(a.jwtTTL))
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key.Key},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", key.ID))
	if err != nil {
		return "", time.Time{}, fmt.Errorf("signing a JWT-SVID for %q: %w", id, err)
	}
	claims := jwt.Claims{Subject: id.String(), Audience: audiences, IssuedAt: jwt.NewNumericDate(now), Expiry: jwt.NewNumericDate(exp)}
	tok, err := jwt.Signed(signer).Claims(claims).Serialize()
	if err != nil {
		return "", time.Time{}, fmt.Errorf("signing a JWT-SVID for %q: %w", id, err)
	}
	return tok, exp, nil
}

func (a *Authority) jwtSigner(now time.Time) (JWTKey, error) {
	a.mu.RLock()
	defer a.mu.RUnlock()
	for i := len(a.jwtKeys) - 1; i >= 0; i-- {
		k := a.jwtKeys[i]
		if !now.Before(k.NotBefore) && now.Before(k.NotAfter) {
			return k, nil
		}
	}
	return JWTKey{}, errors.New("no JWT key signs now (the authority was not rotated)")
}

// ValidateJWT checks a JWT-SVID against bundles (signature, expiry, that
// audience is among its audiences) and returns it. A token of a trust
// domain the bundles do not hold, an expired one or one for another
// audience is an error.
func ValidateJWT(token string, bundles jwtbundle.Source, audience string) (*jwtsvid.SVID, error) {
	if len(token) > 16<<10 {
		return nil, errors.New("validating a JWT-SVID: the token is longer than 16 KiB")
	}
	if audience == "" {
		return nil, errors.New("validating a JWT-SVID: no audience")
	}
	svid, err := jwtsvid.ParseAndValidate(token, bundles, []string{audience})
	if err != nil {
		return nil, fmt.Errorf("validating a JWT-SVID: %w", err)
	}
	return svid, nil
}
