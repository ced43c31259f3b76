package ca

import (
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"go.step.sm/crypto/jose"
)

func TestStationTokenClaims(t *testing.T) {
	priv, err := jose.GenerateJWK("EC", "P-256", "ES256", "sig", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	other, err := jose.GenerateJWK("EC", "P-256", "ES256", "sig", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	pub := priv.Public()
	sign := func(t *testing.T, key *jose.JSONWebKey, alg jose.SignatureAlgorithm, extra map[jose.HeaderKey]any) string {
		t.Helper()
		opts := new(jose.SignerOptions).WithType("JWT").WithHeader("kid", priv.KeyID)
		for k, v := range extra {
			opts = opts.WithHeader(k, v)
		}
		signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key.Key}, opts)
		if err != nil {
			t.Fatal(err)
		}
		tok, err := jose.Signed(signer).Claims(jose.Claims{Issuer: "line1", Subject: "GW-1",
			Expiry: jose.NewNumericDate(time.Now().Add(time.Minute))}).Claims(map[string]any{"sans": []string{"urn:x"}}).CompactSerialize()
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	good := sign(t, priv, jose.ES256, nil)
	parts := strings.Split(good, ".")
	tamperedPayload := parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(`{"iss":"line1","sub":"GW-2"}`)) + "." + parts[2]
	noneAlg := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","kid":"`+priv.KeyID+`"}`)) + "." + parts[1] + "." + parts[2]
	es384 := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"ES384","kid":"`+priv.KeyID+`"}`)) + "." + parts[1] + "." + parts[2]

	tests := []struct {
		name, tok string
		wantErr   bool
	}{
		{"good", good, false},
		{"signed by another key", sign(t, other, jose.ES256, nil), true},
		{"payload changed", tamperedPayload, true},
		{"alg none", noneAlg, true},
		{"alg of another curve", es384, true},
		{"truncated signature", good[:len(good)-4], true},
		{"critical header goes to go-jose, which refuses it", sign(t, priv, jose.ES256, map[jose.HeaderKey]any{"crit": []string{"exp"}}), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok, err := parseStationToken(tt.tok)
			if err != nil {
				t.Fatalf("parseStationToken: %v", err)
			}
			if tok.kid != priv.KeyID {
				t.Errorf("kid %q; want %q", tok.kid, priv.KeyID)
			}
			var claims stationClaims
			err = tok.claims(&pub, &claims)
			if (err != nil) != tt.wantErr {
				t.Fatalf("claims: %v; want error %v", err, tt.wantErr)
			}
			if err == nil && (claims.Subject != "GW-1" || claims.Issuer != "line1" || len(claims.SANs) != 1 || claims.Expiry == nil) {
				t.Errorf("claims %+v; want sub GW-1, iss line1, one SAN, an expiry", claims)
			}
		})
	}
	for _, bad := range []string{"", "a.b", "a.b.c.d", "!!.e30.AA", "e30.!!.AA", "e30.e30.!!", "bm90IGpzb24.e30.AA"} {
		if _, err := parseStationToken(bad); err == nil {
			t.Errorf("parseStationToken(%q) = nil error; want one", bad)
		}
	}
}
