package ca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"strings"

	"go.step.sm/crypto/jose"
)

// stationToken is a station's one-time token: a compact JWS (what `step ca
// token` and package provisioning make), split but not yet verified.
//
// The sign handler reads every station token with this rather than with
// go-jose, whose generic parsing and verification cost as much again as the
// ECDSA check itself at full load. It accepts only what a JWK provisioner's
// token is: a compact JWS with a kid, signed with ECDSA; anything else goes
// to go-jose through [stationToken.claims], which keeps step-ca's rules.
type stationToken struct {
	raw     string
	kid     string
	alg     string
	signed  string // header.payload, what the signature covers
	payload []byte
	sig     []byte
	generic bool // not the plain shape above: verify with go-jose
}

// parseStationToken splits ott. It fails only when ott is not a compact JWS
// at all, which no station makes.
func parseStationToken(ott string) (*stationToken, error) {
	h, rest, ok1 := strings.Cut(ott, ".")
	p, s, ok2 := strings.Cut(rest, ".")
	if !ok1 || !ok2 || strings.Contains(s, ".") {
		return nil, errors.New("token is not a compact JWS")
	}
	header, err := base64.RawURLEncoding.DecodeString(h)
	if err != nil {
		return nil, fmt.Errorf("token header: %w", err)
	}
	var hdr struct {
		Alg  string          `json:"alg"`
		Kid  string          `json:"kid"`
		Crit json.RawMessage `json:"crit"`
		B64  json.RawMessage `json:"b64"`
		JWK  json.RawMessage `json:"jwk"`
	}
	if err := json.Unmarshal(header, &hdr); err != nil {
		return nil, fmt.Errorf("token header: %w", err)
	}
	t := &stationToken{raw: ott, kid: hdr.Kid, alg: hdr.Alg, signed: ott[:len(h)+1+len(p)]}
	// Headers that change what is signed or how: leave them to go-jose.
	t.generic = hdr.Crit != nil || hdr.B64 != nil || hdr.JWK != nil
	if t.payload, err = base64.RawURLEncoding.DecodeString(p); err != nil {
		return nil, fmt.Errorf("token payload: %w", err)
	}
	if t.sig, err = base64.RawURLEncoding.DecodeString(s); err != nil {
		return nil, fmt.Errorf("token signature: %w", err)
	}
	return t, nil
}

// claims verifies the token's signature with key and decodes its claims
// into v.
func (t *stationToken) claims(key *jose.JSONWebKey, v any) error {
	pub, ok := key.Key.(*ecdsa.PublicKey)
	if t.generic || !ok {
		tok, err := jose.ParseSigned(t.raw)
		if err != nil {
			return err
		}
		return tok.Claims(key, v)
	}
	hash, err := ecdsaHash(pub.Curve, t.alg)
	if err != nil {
		return err
	}
	size := (pub.Curve.Params().BitSize + 7) / 8
	if len(t.sig) != 2*size {
		return errors.New("token signature has the wrong length")
	}
	h := hash.New()
	h.Write([]byte(t.signed))
	r := new(big.Int).SetBytes(t.sig[:size])
	s := new(big.Int).SetBytes(t.sig[size:])
	if !ecdsa.Verify(pub, h.Sum(nil), r, s) {
		return errors.New("token signature does not verify with the station's key")
	}
	if err := json.Unmarshal(t.payload, v); err != nil {
		return fmt.Errorf("token claims: %w", err)
	}
	return nil
}

// ecdsaHash is RFC 7518's pairing of ECDSA algorithms with curves.
func ecdsaHash(curve elliptic.Curve, alg string) (crypto.Hash, error) {
	switch {
	case alg == "ES256" && curve == elliptic.P256():
		return crypto.SHA256, nil
	case alg == "ES384" && curve == elliptic.P384():
		return crypto.SHA384, nil
	case alg == "ES512" && curve == elliptic.P521():
		return crypto.SHA512, nil
	}
	return 0, fmt.Errorf("token algorithm %q does not match the station's %s key", alg, curve.Params().Name)
}
