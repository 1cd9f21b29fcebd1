package attesttest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"time"

	"github.com/google/go-sev-guest/abi"
	"github.com/google/go-sev-guest/kds"
	spb "github.com/google/go-sev-guest/proto/sevsnp"
	sevtest "github.com/google/go-sev-guest/testing"

	"github.com/bulwark-sec/bulwark/internal/attest"
)

// SNPPlatform is a synthetic AMD SEV-SNP machine: go-sev-guest's test-only
// ARK and ASK for Milan, a VCEK for one chip and TCB, and a firmware that
// signs attestation reports with it.
type SNPPlatform struct {
	Signer *sevtest.AmdSigner
	ChipID [abi.ChipIDSize]byte
	TCB    attest.SNPTCB
}

// Guest is what a synthetic SEV-SNP guest's report claims.
type Guest struct {
	Measurement [48]byte
	HostData    [32]byte
	ReportData  [64]byte
	IDKeyDigest [48]byte
	SVN         uint32
	Debug       bool
	// MigrationAgent allows a migration agent; NoSMT forbids SMT (the
	// default policy allows it, as most hosts run with SMT on).
	MigrationAgent, NoSMT bool
}

// NewSNPPlatform makes a Milan platform whose certificates are valid from
// now for years, at the given reported TCB, with a random chip ID.
func NewSNPPlatform(now time.Time, tcb attest.SNPTCB) (*SNPPlatform, error) {
	p := &SNPPlatform{TCB: tcb}
	if _, err := rand.Read(p.ChipID[:]); err != nil {
		return nil, err
	}
	parts := kds.TCBParts{BlSpl: tcb.Bootloader, TeeSpl: tcb.TEE, SnpSpl: tcb.SNP, UcodeSpl: tcb.Microcode}
	v, err := kds.ComposeTCBParts(parts)
	if err != nil {
		return nil, fmt.Errorf("composing TCB: %w", err)
	}
	// go-sev-guest's fixed test ARK and ASK (RSA-4096 keys are slow to
	// make); a fresh VCEK key, so that two platforms' reports differ.
	keys := sevtest.DefaultAmdKeys()
	if keys.Vcek, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader); err != nil {
		return nil, err
	}
	b := &sevtest.AmdSignerBuilder{
		Keys: keys, ProductName: "Milan-B1",
		ArkCreationTime: now, AskCreationTime: now, AsvkCreationTime: now, VcekCreationTime: now,
		VcekCustom: sevtest.CertOverride{Extensions: sevtest.CustomExtensions(parts, p.ChipID[:], "", "Milan-B1")},
		HWID:       p.ChipID, TCB: v,
	}
	if p.Signer, err = b.TestOnlyCertChain(); err != nil {
		return nil, fmt.Errorf("making the test AMD chain: %w", err)
	}
	return p, nil
}

// Roots is the platform's ASK+ARK, for attest.Options.SNPRoots.
func (p *SNPPlatform) Roots() map[string][]byte {
	pemOf := func(der []byte) []byte { return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}) }
	return map[string][]byte{"Milan": append(pemOf(p.Signer.Ask.Raw), pemOf(p.Signer.Ark.Raw)...)}
}

// VCEK is the chip's VCEK certificate (DER).
func (p *SNPPlatform) VCEK() []byte { return p.Signer.Vcek.Raw }

// Report makes a signed v2 attestation report for g.
func (p *SNPPlatform) Report(g Guest) ([]byte, error) {
	tcb, err := kds.ComposeTCBParts(kds.TCBParts{BlSpl: p.TCB.Bootloader, TeeSpl: p.TCB.TEE, SnpSpl: p.TCB.SNP, UcodeSpl: p.TCB.Microcode})
	if err != nil {
		return nil, err
	}
	r := &spb.Report{
		Version: 2, GuestSvn: g.SVN, SignatureAlgo: 1,
		Policy:          abi.SnpPolicyToBytes(abi.SnpPolicy{SMT: !g.NoSMT, Debug: g.Debug, MigrateMA: g.MigrationAgent}),
		FamilyId:        make([]byte, abi.FamilyIDSize),
		ImageId:         make([]byte, abi.ImageIDSize),
		ReportData:      g.ReportData[:],
		Measurement:     g.Measurement[:],
		HostData:        g.HostData[:],
		IdKeyDigest:     g.IDKeyDigest[:],
		AuthorKeyDigest: make([]byte, abi.AuthorKeyDigestSize),
		ReportId:        make([]byte, abi.ReportIDSize),
		ReportIdMa:      make([]byte, abi.ReportIDMASize),
		ChipId:          p.ChipID[:],
		Signature:       make([]byte, abi.SignatureSize),
		CurrentTcb:      uint64(tcb), ReportedTcb: uint64(tcb), CommittedTcb: uint64(tcb), LaunchTcb: uint64(tcb),
	}
	raw, err := abi.ReportToAbiBytes(r)
	if err != nil {
		return nil, fmt.Errorf("encoding report: %w", err)
	}
	R, S, err := p.Signer.Sign(abi.SignedComponent(raw))
	if err != nil {
		return nil, fmt.Errorf("signing report: %w", err)
	}
	if err := abi.SetSignature(R, S, raw); err != nil {
		return nil, fmt.Errorf("setting report signature: %w", err)
	}
	return raw, nil
}

// Evidence is Report wrapped for attest.Verify, with the VCEK attached.
func (p *SNPPlatform) Evidence(g Guest) (*attest.Evidence, error) {
	r, err := p.Report(g)
	if err != nil {
		return nil, err
	}
	return &attest.Evidence{Kind: attest.SNP, Data: r, VCEK: p.VCEK()}, nil
}
