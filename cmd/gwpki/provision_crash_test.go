package main

import (
	"bufio"
	"crypto"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gwpki/gwpki/ca"
	"github.com/gwpki/gwpki/provisioning"
)

// TestProvisionCrashResumes kills `gwpki provision` with SIGKILL in the
// middle of a batch and runs the same command again: the batch must finish
// with every gateway provisioned exactly once, one birth certificate and one
// registration each, and a bundle that matches them.
func TestProvisionCrashResumes(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a batch twice against a real server")
	}
	bin := gwpkiBinary(t)
	dir := filepath.Join(t.TempDir(), "d")
	run(t, bin, "init", "--dir", dir, "--hostname", "127.0.0.1")
	stationFile := filepath.Join(t.TempDir(), "station.json")
	run(t, bin, "station", "add", "line1", "--dir", dir, "--out", stationFile)
	serve, ready := startServe(t, bin, dir)
	out := filepath.Join(t.TempDir(), "out")
	const total = 600
	args := []string{"provision", "--ca", ready.APIURL, "--root", ca.Layout{Dir: dir}.RootCert(), "--station", stationFile,
		"--out", out, "--serial-prefix", "CR-", "--count", "600", "--concurrency", "16", "--model", "M1"}

	first := exec.Command(bin, args...)
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	// Kill it once some bundles are in place and more are in flight.
	deadline := time.Now().Add(2 * time.Minute)
	for countBundles(t, out) < 100 {
		if time.Now().After(deadline) {
			first.Process.Kill()
			t.Fatal("the batch made no 100 bundles in 2 minutes")
		}
		time.Sleep(5 * time.Millisecond)
	}
	first.Process.Signal(syscall.SIGKILL)
	first.Wait()
	killedAt := countBundles(t, out)
	if killedAt >= total {
		t.Fatalf("the batch finished (%d bundles) before the kill", killedAt)
	}

	second := run(t, bin, args...)
	if !strings.Contains(second, "skipped") {
		t.Errorf("second run's summary %q says nothing of skipped gateways", second)
	}
	t.Logf("killed with %d bundles in place; second run: %s", killedAt, strings.TrimSpace(second))

	// Every bundle is whole and consistent: key matches certificate.
	fingerprints := map[string]string{}
	for i := 1; i <= total; i++ {
		serial := fmt.Sprintf("CR-%06d", i)
		b := readBundle(t, filepath.Join(out, serial))
		if b.Serial != serial || b.Model != "M1" || b.ClaimSecret == "" || b.LabelCode == "" {
			t.Fatalf("bundle %s: gateway.json %+v", serial, b)
		}
		fingerprints[serial] = b.Fingerprint
	}
	if n := countBundles(t, out); n != total {
		t.Errorf("%d bundles; want %d", n, total)
	}
	// The manifest lists each gateway once, with the bundle's certificate.
	seen := map[string]bool{}
	f, err := os.Open(filepath.Join(out, "manifest.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var e provisioning.ManifestEntry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatal(err)
		}
		if seen[e.Serial] || fingerprints[e.Serial] != e.Fingerprint {
			t.Errorf("manifest line %+v: duplicate, or not the bundle's certificate", e)
		}
		seen[e.Serial] = true
	}
	if len(seen) != total {
		t.Errorf("manifest lists %d gateways; want %d", len(seen), total)
	}

	// The CA issued one birth certificate per gateway: no duplicates from
	// the crash.
	serve.Process.Signal(syscall.SIGTERM)
	serve.Wait()
	var stored []struct {
		Gateway string `json:"gateway"`
	}
	if err := json.Unmarshal([]byte(run(t, bin, "db", "certs", "--dir", dir, "--provisioner", "line1", "--json")), &stored); err != nil {
		t.Fatal(err)
	}
	perGateway := map[string]int{}
	for _, c := range stored {
		perGateway[c.Gateway]++
	}
	for serial := range fingerprints {
		if perGateway[serial] != 1 {
			t.Errorf("gateway %s has %d birth certificates; want 1", serial, perGateway[serial])
		}
	}
}

func countBundles(t *testing.T, out string) int {
	t.Helper()
	entries, err := os.ReadDir(out)
	if err != nil {
		return 0
	}
	n := 0
	for _, e := range entries {
		if e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
			n++
		}
	}
	return n
}

// readBundle reads and checks one gateway's bundle: its key is the
// certificate's, the certificate names the gateway, the key file is 0600.
func readBundle(t *testing.T, dir string) provisioning.Bundle {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, provisioning.GatewayFile))
	if err != nil {
		t.Fatal(err)
	}
	var b provisioning.Bundle
	if err := json.Unmarshal(data, &b); err != nil {
		t.Fatal(err)
	}
	certPEM, err := os.ReadFile(filepath.Join(dir, provisioning.CertFile))
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(certPEM)
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err := os.ReadFile(filepath.Join(dir, provisioning.KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(dir, provisioning.KeyFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("%s: key file mode %v, %v; want 0600", dir, fi.Mode().Perm(), err)
	}
	kb, _ := pem.Decode(keyPEM)
	key, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if !key.(crypto.Signer).Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(cert.PublicKey) {
		t.Errorf("%s: the key is not the certificate's", dir)
	}
	if ca.GatewaySerial(cert) != b.Serial {
		t.Errorf("%s: certificate names %q; want %q", dir, ca.GatewaySerial(cert), b.Serial)
	}
	return b
}
