package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/gwpki/gwpki/claim"
	"github.com/gwpki/gwpki/provisioning"
)

func writeTestBundle(t *testing.T, serial string, secret []byte) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), serial)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(provisioning.Bundle{Serial: serial, ClaimSecret: base64.RawURLEncoding.EncodeToString(secret)})
	if err := os.WriteFile(filepath.Join(dir, provisioning.GatewayFile), b, 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestGatewayCode: the code the gateway prints is the one the server
// accepts, in its window and the next, and no longer.
func TestGatewayCode(t *testing.T) {
	secret := bytes.Repeat([]byte{7}, 32)
	dir := writeTestBundle(t, "GW-000042", secret)
	now := time.Date(2026, 11, 26, 5, 3, 0, 0, time.UTC)
	var out, errOut bytes.Buffer
	cmd := &cobra.Command{}
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	if err := (&gatewayCodeOptions{bundle: dir}).run(cmd, now); err != nil {
		t.Fatal(err)
	}
	printed := strings.TrimSpace(out.String())
	if !regexp.MustCompile(`^[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}-[0-9A-Z*~$=]$`).MatchString(printed) {
		t.Fatalf("printed %q; want XXXX-XXXX-C", printed)
	}
	code, err := claim.ParseCode(printed)
	if err != nil || code.Kind != claim.CodeDisplay {
		t.Fatalf("ParseCode(%q) = %v, %v; want a display code", printed, code, err)
	}
	for _, tt := range []struct {
		at   time.Time
		want bool
	}{
		{now, true},
		{now.Add(claim.DisplayWindow), true},      // the next window still takes it
		{now.Add(2 * claim.DisplayWindow), false}, // then it is gone
		{now.Add(-claim.DisplayWindow), false},    // and was not valid before
	} {
		if got := claim.VerifyDisplayCode(secret, "GW-000042", code, tt.at); got != tt.want {
			t.Errorf("VerifyDisplayCode at %v = %v; want %v", tt.at, got, tt.want)
		}
	}
	if !strings.Contains(errOut.String(), "valid until 2026-11-26T05:10:00Z") {
		t.Errorf("stderr %q; want the end of the next window, 05:10:00Z", errOut.String())
	}
}

func TestGatewayCodeRefuses(t *testing.T) {
	notJSON := t.TempDir()
	os.WriteFile(filepath.Join(notJSON, provisioning.GatewayFile), []byte("{"), 0o600)
	noSecret := writeTestBundle(t, "GW-1", nil)
	for name, tt := range map[string]struct {
		args []string
		want string
	}{
		"no bundle flag":  {[]string{"gateway", "code"}, "no bundle given"},
		"missing bundle":  {[]string{"gateway", "code", "--bundle", filepath.Join(t.TempDir(), "none")}, "read bundle"},
		"not a bundle":    {[]string{"gateway", "code", "--bundle", notJSON}, "not a gwpki gateway file"},
		"no claim secret": {[]string{"gateway", "code", "--bundle", noSecret}, "no valid claim secret"},
	} {
		if _, stderr, failed := runGwpki(t, "", tt.args...); !failed || !strings.Contains(stderr, tt.want) {
			t.Errorf("%s: failed=%v stderr %q; want an error mentioning %q", name, failed, stderr, tt.want)
		}
	}
}
