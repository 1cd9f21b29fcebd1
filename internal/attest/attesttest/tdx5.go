package attesttest

import (
	"encoding/binary"
	"fmt"
)

// TD report body types of a TDX v5 quote's body descriptor.
const (
	TDReport10 = 2 // TD report 1.0, 584 bytes, as in v4
	TDReport15 = 3 // TD report 1.5, 648 bytes: adds TEE_TCB_SVN2 and MRSERVICETD
)

// TD15 is what a TD report 1.5 adds to TD, and for either body type a
// TEE_TCB_SVN replacing the template's when not all zero.
type TD15 struct {
	TeeTCBSVN2  [16]byte
	MRSERVICETD [48]byte
	TeeTCBSVN   [16]byte
}

// TDXQuoteV5 makes a TDX v5 quote for td with the given body type: the v4
// quote TDXQuote makes from template (its header, TD report and signature
// data, so the same QE report, binding and PCK chain), with version 5, the
// body descriptor, for TDReport15 ext appended to the TD report, and the
// quote signature over header, descriptor and body by the attestation key.
func (p *SGXPlatform) TDXQuoteV5(template []byte, td TD, bodyType uint16, ext TD15) ([]byte, error) {
	v4, err := p.TDXQuote(template, td)
	if err != nil {
		return nil, err
	}
	const hdr, body10 = 48, 584
	if len(v4) < hdr+body10+4+64 {
		return nil, fmt.Errorf("v4 quote is %d bytes", len(v4))
	}
	body := append([]byte(nil), v4[hdr:hdr+body10]...)
	if ext.TeeTCBSVN != [16]byte{} {
		copy(body[:16], ext.TeeTCBSVN[:])
	}
	switch bodyType {
	case TDReport10:
	case TDReport15:
		body = append(append(body, ext.TeeTCBSVN2[:]...), ext.MRSERVICETD[:]...)
	default:
		return nil, fmt.Errorf("body type %d, want %d or %d", bodyType, TDReport10, TDReport15)
	}
	out := append([]byte(nil), v4[:hdr]...)
	binary.LittleEndian.PutUint16(out[0:2], 5)
	out = binary.LittleEndian.AppendUint16(out, bodyType)
	out = binary.LittleEndian.AppendUint32(out, uint32(len(body)))
	out = append(out, body...)
	sig, err := signRS(p.AKKey, out)
	if err != nil {
		return nil, err
	}
	// The signature data as its size says: the real template carries
	// trailing bytes (go-tdx-guest's test of extra data) that v5 refuses.
	n := int(binary.LittleEndian.Uint32(v4[hdr+body10:]))
	if len(v4) < hdr+body10+4+n {
		return nil, fmt.Errorf("v4 signature data size %d overruns the quote", n)
	}
	sd := append([]byte(nil), v4[hdr+body10+4:hdr+body10+4+n]...)
	copy(sd[:64], sig)
	out = binary.LittleEndian.AppendUint32(out, uint32(len(sd)))
	return append(out, sd...), nil
}
