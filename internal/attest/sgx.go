package attest

func (v *Verifier) verifySGX(ev *Evidence) (*Result, error) { return nil, nil }
