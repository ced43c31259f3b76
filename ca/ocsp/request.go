package ocsp

import (
	"crypto"
	"encoding/asn1"
	"math/big"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
	xocsp "golang.org/x/crypto/ocsp"
)

// certRequest is what the responder reads from an OCSP request: the first
// (normally only) CertID. Its slices may alias the request's buffer.
type certRequest struct {
	hash              crypto.Hash
	nameHash, keyHash []byte
	// serial is the content of the serial's DER INTEGER (minimal two's
	// complement, as DER requires), so that equal serials are equal bytes.
	serial []byte
}

// parseRequest reads an OCSP request. x/crypto/ocsp's ParseRequest is the
// reference; the shape every client sends in practice (one CertID, no
// version, requestor name or signature) is read here first without
// allocating, and accepted only where ParseRequest would accept it with the
// same result (FuzzParseRequest checks that). Anything else goes to
// ParseRequest, which answers the first of several CertIDs and refuses
// signed requests.
func parseRequest(der []byte, out *certRequest) bool {
	if parseCanonical(der, out) {
		return true
	}
	req, err := xocsp.ParseRequest(der)
	if err != nil {
		return false
	}
	*out = certRequest{
		hash:     req.HashAlgorithm,
		nameHash: req.IssuerNameHash,
		keyHash:  req.IssuerKeyHash,
		serial:   serialBytes(req.SerialNumber),
	}
	return true
}

// parseCanonical reads
//
//	OCSPRequest ::= SEQUENCE { tbsRequest SEQUENCE {
//	    requestList SEQUENCE OF Request -- exactly one --,
//	    ... -- requestExtensions, ignored as ParseRequest ignores them
//	} }
//	Request ::= SEQUENCE { reqCert CertID, ... }
//	CertID ::= SEQUENCE { hashAlgorithm AlgorithmIdentifier,
//	    issuerNameHash OCTET STRING, issuerKeyHash OCTET STRING,
//	    serialNumber INTEGER, ... }
//
// and reports false for anything else, including what is valid but rare.
func parseCanonical(der []byte, out *certRequest) bool {
	s := cryptobyte.String(der)
	var req, tbs, list, single, id, algID, oid, nameHash, keyHash, serial cryptobyte.String
	if !s.ReadASN1(&req, cbasn1.SEQUENCE) || !s.Empty() ||
		!req.ReadASN1(&tbs, cbasn1.SEQUENCE) || !req.Empty() || // a signature: ParseRequest refuses it
		!tbs.ReadASN1(&list, cbasn1.SEQUENCE) || // a version or requestor name first
		!list.ReadASN1(&single, cbasn1.SEQUENCE) || !list.Empty() ||
		!single.ReadASN1(&id, cbasn1.SEQUENCE) ||
		!id.ReadASN1(&algID, cbasn1.SEQUENCE) ||
		!algID.ReadASN1(&oid, cbasn1.OBJECT_IDENTIFIER) ||
		!id.ReadASN1(&nameHash, cbasn1.OCTET_STRING) ||
		!id.ReadASN1(&keyHash, cbasn1.OCTET_STRING) ||
		!id.ReadASN1(&serial, cbasn1.INTEGER) {
		return false
	}
	if !algID.Empty() { // parameters: absent or NULL
		var null cryptobyte.String
		if !algID.ReadASN1(&null, cbasn1.NULL) || !null.Empty() || !algID.Empty() {
			return false
		}
	}
	if !minimalInteger(serial) {
		return false
	}
	h := hashOf(oid)
	if h == 0 {
		return false
	}
	*out = certRequest{hash: h, nameHash: nameHash, keyHash: keyHash, serial: serial}
	return true
}

// hashOIDs are the DER contents of the CertID hash algorithms' OIDs, as
// x/crypto/ocsp knows them.
var hashOIDs = [len(algs)]string{
	"\x2b\x0e\x03\x02\x1a",                 // 1.3.14.3.2.26 SHA-1
	"\x60\x86\x48\x01\x65\x03\x04\x02\x01", // 2.16.840.1.101.3.4.2.1 SHA-256
	"\x60\x86\x48\x01\x65\x03\x04\x02\x02", // SHA-384
	"\x60\x86\x48\x01\x65\x03\x04\x02\x03", // SHA-512
}

func hashOf(oid []byte) crypto.Hash {
	for i, o := range hashOIDs {
		if string(oid) == o {
			return algs[i]
		}
	}
	return 0
}

// minimalInteger reports whether b is the content of a DER INTEGER: not
// empty, no redundant leading 0x00 or 0xff.
func minimalInteger(b []byte) bool {
	switch {
	case len(b) == 0:
		return false
	case len(b) == 1:
		return true
	case b[0] == 0 && b[1]&0x80 == 0, b[0] == 0xff && b[1]&0x80 != 0:
		return false
	}
	return true
}

// serialBytes returns the content of n's DER INTEGER.
func serialBytes(n *big.Int) []byte {
	der, err := asn1.Marshal(n)
	if err != nil { // a *big.Int always marshals
		panic(err)
	}
	s := cryptobyte.String(der)
	var content cryptobyte.String
	s.ReadASN1(&content, cbasn1.INTEGER)
	return content
}

// serialInt returns the serial whose DER INTEGER content is b.
func serialInt(b []byte) *big.Int {
	n := new(big.Int).SetBytes(b)
	if len(b) > 0 && b[0]&0x80 != 0 { // negative: two's complement
		n.Sub(n, new(big.Int).Lsh(big.NewInt(1), uint(len(b))*8))
	}
	return n
}
