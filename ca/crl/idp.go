package crl

import (
	"crypto/x509/pkix"
	"encoding/asn1"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// oidIssuingDistributionPoint is id-ce-issuingDistributionPoint (RFC 5280
// §5.2.5).
var oidIssuingDistributionPoint = asn1.ObjectIdentifier{2, 5, 29, 28}

// issuingDistributionPoint returns the critical extension that scopes a
// shard's CRL to certificates whose CRL distribution point is uri and that
// are not CA certificates:
//
//	IssuingDistributionPoint ::= SEQUENCE {
//	     distributionPoint          [0] DistributionPointName OPTIONAL,
//	     onlyContainsUserCerts      [1] BOOLEAN DEFAULT FALSE, ... }
//	DistributionPointName ::= CHOICE {
//	     fullName                [0]     GeneralNames, ... }
//
// The module uses implicit tags, except that a tagged CHOICE is explicit:
// distributionPoint is a constructed [0] around the fullName CHOICE, itself
// a constructed [0] in place of the GeneralNames SEQUENCE, holding one
// uniformResourceIdentifier, a primitive [6] IA5String; onlyContainsUserCerts
// is a primitive [1] BOOLEAN TRUE.
func issuingDistributionPoint(uri string) pkix.Extension {
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.Tag(0).ContextSpecific().Constructed(), func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.Tag(0).ContextSpecific().Constructed(), func(b *cryptobyte.Builder) {
				b.AddASN1(cbasn1.Tag(6).ContextSpecific(), func(b *cryptobyte.Builder) {
					b.AddBytes([]byte(uri))
				})
			})
		})
		b.AddASN1(cbasn1.Tag(1).ContextSpecific(), func(b *cryptobyte.Builder) {
			b.AddUint8(0xff)
		})
	})
	return pkix.Extension{Id: oidIssuingDistributionPoint, Critical: true, Value: b.BytesOrPanic()}
}
