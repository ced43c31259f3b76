package provisioning

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.step.sm/crypto/jose"

	"github.com/gwpki/gwpki/ca"
)

func writeStation(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "station.json")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestLoadStation(t *testing.T) {
	key, err := jose.GenerateJWK("EC", "P-256", "ES256", "sig", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	pub := key.Public()
	good := writeStation(t, Station{Name: "line1", CAURL: "https://ca:8443", Key: key})
	if s, err := LoadStation(good); err != nil || s.Name != "line1" {
		t.Fatalf("LoadStation(good) = %v, %v; want line1", s, err)
	}
	bad := map[string]string{
		"missing":     filepath.Join(t.TempDir(), "nope.json"),
		"not JSON":    writeRaw(t, "{station"),
		"no key":      writeStation(t, map[string]string{"name": "line1"}),
		"public only": writeStation(t, Station{Name: "line1", Key: &pub}),
	}
	for name, path := range bad {
		if _, err := LoadStation(path); err == nil {
			t.Errorf("LoadStation(%s) = nil error; want one", name)
		}
	}
}

func writeRaw(t *testing.T, s string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "raw.json")
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestTokenClaims checks the token carries what step-ca's JWK provisioner
// checks: issuer = station, audience, subject, the gateway URI SAN, a
// five-minute validity, and a signature by the station key.
func TestTokenClaims(t *testing.T) {
	key, err := jose.GenerateJWK("EC", "P-256", "ES256", "sig", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	s := &Station{Name: "line1", Key: key}
	now := time.Unix(1_800_000_000, 0)
	tok, err := s.Token("GW-1", SignURL("https://ca:8443/"), now)
	if err != nil {
		t.Fatal(err)
	}
	jwt, err := jose.ParseSigned(tok)
	if err != nil {
		t.Fatal(err)
	}
	var c tokenClaims
	pub := key.Public()
	if err := jwt.Claims(&pub, &c); err != nil {
		t.Fatalf("token does not verify with the station key: %v", err)
	}
	if c.Issuer != "line1" || c.Subject != "GW-1" || len(c.Audience) != 1 || c.Audience[0] != "https://ca:8443/1.0/sign" {
		t.Errorf("claims iss=%q sub=%q aud=%v; want line1, GW-1, https://ca:8443/1.0/sign", c.Issuer, c.Subject, c.Audience)
	}
	if len(c.SANs) != 1 || c.SANs[0] != ca.GatewayURIPrefix+"GW-1" {
		t.Errorf("sans = %v; want [%sGW-1]", c.SANs, ca.GatewayURIPrefix)
	}
	if got := c.Expiry.Time().Sub(c.NotBefore.Time()); got != TokenLifetime {
		t.Errorf("validity %v; want %v", got, TokenLifetime)
	}
	if c.ID == "" {
		t.Error("token has no id; step-ca needs one to refuse replays")
	}
	if _, err := s.Token("GW/1", SignURL("https://ca"), now); err == nil {
		t.Error("Token accepted the serial GW/1")
	}
	reissue, err := s.Token("GW-1", SignURL("https://ca:8443/"), now, tokenReissue(true))
	if err != nil {
		t.Fatal(err)
	}
	jwt, err = jose.ParseSigned(reissue)
	if err != nil {
		t.Fatal(err)
	}
	var rc tokenClaims
	if err := jwt.Claims(&pub, &rc); err != nil || !rc.Reissue || jwt.Headers[0].KeyID != key.KeyID {
		t.Errorf("reissue token: %v, reissue %v, kid %q; want it to verify, ask for a reissue, name the key", err, rc.Reissue, jwt.Headers[0].KeyID)
	}
}

func TestGatewayCSR(t *testing.T) {
	if _, _, err := NewGatewayKey("bad serial"); err == nil {
		t.Error("NewGatewayKey accepted a serial with a space")
	}
	_, csr, err := NewGatewayKey("GW-1")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(csr), "-----BEGIN CERTIFICATE REQUEST-----") {
		t.Errorf("CSR is not PEM: %.40q", csr)
	}
}
