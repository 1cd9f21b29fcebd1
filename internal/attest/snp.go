package attest

import (
	"crypto/sha256"
	"crypto/x509"
	"fmt"
	"strings"
	"time"

	"github.com/google/go-sev-guest/abi"
	"github.com/google/go-sev-guest/kds"
	spb "github.com/google/go-sev-guest/proto/sevsnp"
	"github.com/google/go-sev-guest/validate"
	"github.com/google/go-sev-guest/verify"
)

// verifySNP checks an SEV-SNP attestation report: the VCEK's chain to the
// AMD ASK and ARK of its product line (go-sev-guest verify), the report's
// ECDSA P-384 signature by the VCEK, then the guest policy bits, TCB and
// the consistency of report and VCEK (go-sev-guest validate).
func (v *Verifier) verifySNP(ev *Evidence) (*Result, error) {
	if len(ev.Data) < abi.ReportSize {
		return nil, refuse(SNP, ReasonMalformed, nil, "report is %d bytes, want %d", len(ev.Data), abi.ReportSize)
	}
	report, err := abi.ReportToProto(ev.Data[:abi.ReportSize])
	if err != nil {
		return nil, refuse(SNP, ReasonMalformed, err, "parsing attestation report")
	}
	der, err := v.vcekFor(ev, report)
	if err != nil {
		return nil, err
	}
	vcek, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, refuse(SNP, ReasonMalformed, err, "parsing VCEK certificate")
	}
	now := v.now()
	if now.Before(vcek.NotBefore) || now.After(vcek.NotAfter) {
		return nil, refuse(SNP, ReasonCollateralExpired, nil, "VCEK valid %s to %s, now is %s",
			vcek.NotBefore.Format(time.DateOnly), vcek.NotAfter.Format(time.DateOnly), now.Format(time.DateOnly))
	}
	att := &spb.Attestation{Report: report, CertificateChain: &spb.CertificateChain{VcekCert: der}}
	if err := v.snpSignature(att, der, vcek, now); err != nil {
		return nil, err
	}
	pol, err := abi.ParseSnpPolicy(report.GetPolicy())
	if err != nil {
		return nil, refuse(SNP, ReasonMalformed, err, "parsing guest policy")
	}
	p := &v.opts.Policy
	if pol.Debug && !p.AllowDebug {
		return nil, refuse(SNP, ReasonDebug, nil, "guest policy allows debugging: the host can read and change guest memory")
	}
	if pol.MigrateMA && !p.AllowMigrationAgent {
		return nil, refuse(SNP, ReasonPolicy, nil, "guest policy allows a migration agent")
	}
	if pol.SMT && p.DenySMT {
		return nil, refuse(SNP, ReasonPolicy, nil, "guest policy allows SMT and the TEE policy denies it")
	}
	reported := kds.DecomposeTCBVersion(kds.TCBVersion(report.GetReportedTcb()))
	tcb := SNPTCB{Bootloader: reported.BlSpl, TEE: reported.TeeSpl, SNP: reported.SnpSpl, Microcode: reported.UcodeSpl}
	if tcb.Below(p.MinSNPTCB) {
		return nil, refuse(SNP, ReasonTCBOutOfDate, nil, "reported TCB %s is below the policy's minimum %s", tcb, p.MinSNPTCB)
	}
	vopts := &validate.Options{
		// The maximum acceptable policy: the bits we judge ourselves above.
		GuestPolicy:               abi.SnpPolicy{SMT: true, MigrateMA: true, Debug: true},
		MinimumTCB:                kds.TCBParts{BlSpl: p.MinSNPTCB.Bootloader, TeeSpl: p.MinSNPTCB.TEE, SnpSpl: p.MinSNPTCB.SNP, UcodeSpl: p.MinSNPTCB.Microcode},
		PermitProvisionalFirmware: true,
	}
	if err := validate.SnpAttestation(att, vopts); err != nil {
		r := ReasonPolicy
		switch s := err.Error(); {
		case strings.Contains(s, "CHIP_ID"):
			r = ReasonRoot // the VCEK endorses another chip
		case strings.Contains(s, "TCB"):
			r = ReasonTCBOutOfDate
		}
		return nil, refuse(SNP, r, err, "validating report against its VCEK")
	}
	return &Result{
		Kind:        SNP,
		Measurement: report.GetMeasurement(),
		HostData:    report.GetHostData(),
		Signer:      report.GetIdKeyDigest(),
		SVN:         report.GetGuestSvn(),
		ReportData:  report.GetReportData(),
		Debug:       pol.Debug,
		TCB:         TCB{SNP: &tcb},
		TCBStatus:   "reported " + tcb.String(),
		Platform:    report.GetChipId(),
	}, nil
}

// vcekFor returns the VCEK DER for the report: the evidence's own, else
// the supplied one whose HWID is the report's CHIP_ID.
func (v *Verifier) vcekFor(ev *Evidence, report *spb.Report) ([]byte, error) {
	if len(ev.VCEK) > 0 {
		return ev.VCEK, nil
	}
	for _, der := range v.opts.VCEKs {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			continue
		}
		ext, err := kds.VcekCertificateExtensions(c)
		if err == nil && eq(ext.HWID[:], report.GetChipId()) {
			return der, nil
		}
	}
	return nil, refuse(SNP, ReasonRoot, nil, "no VCEK certificate for chip %x (supply it with the evidence or the collateral)", report.GetChipId()[:8])
}

// snpSignature verifies the VCEK chain the first time a VCEK is seen and
// the report signature every time.
func (v *Verifier) snpSignature(att *spb.Attestation, der []byte, vcek *x509.Certificate, now time.Time) error {
	key := sha256.Sum256(der)
	if _, ok := v.vceks.Load(key); ok {
		if err := verify.SnpProtoReportSignature(att.GetReport(), vcek); err != nil {
			return refuse(SNP, ReasonSignature, err, "report signature does not verify with its VCEK")
		}
		return nil
	}
	opts := &verify.Options{DisableCertFetching: true, Now: now, TrustedRoots: v.snpRoots}
	if err := verify.SnpAttestation(att, opts); err != nil {
		// Tell a bad signature from a bad chain: does the report verify
		// with the key it names?
		if sigErr := verify.SnpProtoReportSignature(att.GetReport(), vcek); sigErr != nil {
			return refuse(SNP, ReasonSignature, sigErr, "report signature does not verify with its VCEK")
		}
		return refuse(SNP, ReasonRoot, err, "VCEK does not chain to a trusted AMD root")
	}
	v.vceks.Store(key, struct{}{})
	return nil
}

// String for logs.
func (e *Evidence) String() string { return fmt.Sprintf("%s evidence (%d bytes)", e.Kind, len(e.Data)) }
