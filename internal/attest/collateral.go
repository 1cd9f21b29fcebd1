package attest

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/go-tdx-guest/pcs"
)

// IntelCollateral is Intel PCS collateral for one platform family (FMSPC),
// fetched ahead of time: TCB info and QE identity with their issuer chains,
// the PCK CRL with its chain, and the root CA CRL. Bodies are kept as
// published, because their signatures cover the exact bytes.
type IntelCollateral struct {
	TCBInfo         []byte // {"tcbInfo":{...},"signature":"..."}
	TCBInfoChain    []byte // PEM: TCB signing cert, root
	QEIdentity      []byte // {"enclaveIdentity":{...},"signature":"..."}
	QEIdentityChain []byte // PEM
	PCKCRL          []byte // DER (or hex of DER, as PCS serves it)
	PCKCRLChain     []byte // PEM
	RootCRL         []byte // DER
}

// The file names LoadIntelCollateral reads from a directory.
var intelFiles = map[string]func(c *IntelCollateral) *[]byte{
	"tcbinfo.json":         func(c *IntelCollateral) *[]byte { return &c.TCBInfo },
	"tcbinfo-chain.pem":    func(c *IntelCollateral) *[]byte { return &c.TCBInfoChain },
	"qeidentity.json":      func(c *IntelCollateral) *[]byte { return &c.QEIdentity },
	"qeidentity-chain.pem": func(c *IntelCollateral) *[]byte { return &c.QEIdentityChain },
	"pckcrl.der":           func(c *IntelCollateral) *[]byte { return &c.PCKCRL },
	"pckcrl-chain.pem":     func(c *IntelCollateral) *[]byte { return &c.PCKCRLChain },
	"rootcrl.der":          func(c *IntelCollateral) *[]byte { return &c.RootCRL },
}

// LoadIntelCollateral reads tcbinfo.json, tcbinfo-chain.pem, qeidentity.json,
// qeidentity-chain.pem, pckcrl.der, pckcrl-chain.pem and rootcrl.der from dir.
func LoadIntelCollateral(dir string) (*IntelCollateral, error) {
	c := &IntelCollateral{}
	for name, field := range intelFiles {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return nil, fmt.Errorf("reading Intel collateral: %w", err)
		}
		*field(c) = b
	}
	return c, nil
}

// WriteDir writes the collateral in the layout LoadIntelCollateral reads.
func (c *IntelCollateral) WriteDir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating collateral directory: %w", err)
	}
	for name, field := range intelFiles {
		if err := os.WriteFile(filepath.Join(dir, name), *field(c), 0o644); err != nil {
			return fmt.Errorf("writing collateral: %w", err)
		}
	}
	return nil
}

// offlineGetter serves the collateral to go-tdx-guest in place of Intel PCS:
// the URL only selects which document; nothing leaves the process.
type offlineGetter struct{ c *IntelCollateral }

func (g offlineGetter) Get(u string) (map[string][]string, []byte, error) {
	esc := func(pem []byte) []string { return []string{url.QueryEscape(string(pem))} }
	switch {
	case strings.Contains(u, "/tcb?"):
		return map[string][]string{"Tcb-Info-Issuer-Chain": esc(g.c.TCBInfoChain)}, g.c.TCBInfo, nil
	case strings.Contains(u, "/qe/identity"):
		return map[string][]string{"Sgx-Enclave-Identity-Issuer-Chain": esc(g.c.QEIdentityChain)}, g.c.QEIdentity, nil
	case strings.Contains(u, "/pckcrl"):
		return map[string][]string{"Sgx-Pck-Crl-Issuer-Chain": esc(g.c.PCKCRLChain)}, g.c.PCKCRL, nil
	default:
		return nil, g.c.RootCRL, nil
	}
}

// parsedIntel is collateral decoded once for the SGX path and for
// re-evaluating recorded TCBs when new collateral arrives.
type parsedIntel struct {
	tcb pcs.TdxTcbInfo
	qe  pcs.QeIdentity
}

func parsePEMChain(b []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parsing certificate: %w", err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no PEM certificate found")
	}
	return out, nil
}
