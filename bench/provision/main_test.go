package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/gwpki/gwpki/internal/testpki"
)

func TestParseSummary(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want summary
		err  string // substring of the error; "" for none
	}{
		{
			name: "gwpki provision --json",
			in:   `{"done":10000,"failed":0,"out":"/tmp/x/out-c32","per_second":1021.5,"seconds":9.79,"skipped":0}` + "\n",
			want: summary{Done: 10000, Seconds: 9.79, PerSecond: 1021.5, Out: "/tmp/x/out-c32"},
		},
		{
			name: "a field added later is ignored",
			in:   `{"done":3,"failed":1,"skipped":2,"seconds":0.5,"per_second":6,"out":"o","labels":["png"]}`,
			want: summary{Done: 3, Skipped: 2, Failed: 1, Seconds: 0.5, PerSecond: 6, Out: "o"},
		},
		{
			name: "the last line counts",
			in:   "something else\n\n" + `{"done":1,"failed":0,"skipped":0,"seconds":0.01,"per_second":100,"out":"o"}` + "\n\n",
			want: summary{Done: 1, Seconds: 0.01, PerSecond: 100, Out: "o"},
		},
		{name: "empty", in: "", err: "no summary"},
		{name: "blank lines", in: "\n \n", err: "no summary"},
		{name: "the stderr line, not JSON", in: "provisioned 10 gateways (0 skipped, 0 failed) in 1s, 10/s; bundles and manifest in o\n", err: "--json summary"},
		{name: "cut short", in: `{"done":10,"fail`, err: "--json summary"},
		{name: "no time", in: `{"done":10,"failed":0,"skipped":0}`, err: "impossible"},
		{name: "negative", in: `{"done":-1,"failed":0,"skipped":0,"seconds":1}`, err: "impossible"},
		{name: "wrong type", in: `{"done":"10","seconds":1}`, err: "--json summary"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseSummary([]byte(tt.in))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("parseSummary(%q) error = %v; want one containing %q", tt.in, err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseSummary(%q): %v", tt.in, err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("parseSummary(%q) mismatch (-want +got):\n%s", tt.in, diff)
			}
		})
	}
}

func TestParseConcurrency(t *testing.T) {
	tests := []struct {
		in   string
		want []int
		err  bool
	}{
		{in: "32", want: []int{32}},
		{in: "16,32,64", want: []int{16, 32, 64}},
		{in: " 64 , 16,", want: []int{64, 16}},
		{in: "32,32", want: []int{32}},
		{in: "", err: true},
		{in: ",", err: true},
		{in: "0", err: true},
		{in: "-8", err: true},
		{in: "16,x", err: true},
	}
	for _, tt := range tests {
		got, err := parseConcurrency(tt.in)
		if tt.err {
			if err == nil {
				t.Errorf("parseConcurrency(%q) = %v; want an error", tt.in, got)
			}
			continue
		}
		if err != nil || !cmp.Equal(got, tt.want) {
			t.Errorf("parseConcurrency(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
}

func TestBatchSerials(t *testing.T) {
	got := batch{prefix: "PB-", start: 10001, count: 3}.serials()
	want := []string{"PB-010001", "PB-010002", "PB-010003"}
	if !cmp.Equal(got, want) {
		t.Errorf("serials of PB- from 10001, 3 = %v; want %v", got, want)
	}
}

func TestShellQuote(t *testing.T) {
	for _, s := range []string{"/tmp/plain", "/tmp/with space", "it's", `a"b$c\d`, "`x`", ""} {
		out, err := exec.Command("bash", "-c", "printf %s "+shellQuote(s)).Output()
		if err != nil {
			t.Fatalf("bash with %s: %v", shellQuote(s), err)
		}
		if string(out) != s {
			t.Errorf("bash reads %s as %q; want %q", shellQuote(s), out, s)
		}
	}
}

// TestLoopScript runs the shell loop with a fake step that logs its
// arguments and writes the files it is asked for: one token, then one
// certificate per serial, in order, with the flags a user passes.
func TestLoopScript(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	calls := filepath.Join(dir, "calls")
	fake := "#!/usr/bin/env bash\n" +
		"echo \"$*\" >> " + shellQuote(calls) + "\n" +
		"if [ \"$2\" = token ]; then echo \"TOKEN-$3\"; else echo cert > \"$4\"; echo key > \"$5\"; fi\n"
	if err := os.WriteFile(filepath.Join(bin, "step"), []byte(fake), 0o755); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "gwpki data") // a space, to check the quoting
	out := filepath.Join(dir, "out")
	script := filepath.Join(dir, "loop.sh")
	b := batch{prefix: "PS-", start: 9, count: 2}
	if err := writeLoopScript(script, "https://127.0.0.1:8443", data, out, b); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("bash", script)
	cmd.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"))
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("bash %s: %v\n%s", script, err, msg)
	}
	got, err := os.ReadFile(calls)
	if err != nil {
		t.Fatal(err)
	}
	root, key := filepath.Join(data, "certs", "root_ca.crt"), filepath.Join(data, "bench.jwk")
	var want []string
	for _, s := range []string{"PS-000009", "PS-000010"} {
		want = append(want,
			"ca token "+s+" --provisioner bench --key "+key+" --san urn:gwpki:gateway:"+s+
				" --ca-url https://127.0.0.1:8443 --root "+root,
			"ca certificate "+s+" "+filepath.Join(out, s, "idevid.crt")+" "+filepath.Join(out, s, "idevid.key")+
				" --token TOKEN-"+s+" --ca-url https://127.0.0.1:8443 --root "+root)
	}
	if diff := cmp.Diff(want, strings.Split(strings.TrimSpace(string(got)), "\n")); diff != "" {
		t.Errorf("step calls of the loop (-want +got):\n%s", diff)
	}
}

func TestCheckCertificate(t *testing.T) {
	ca := testpki.NewCA(t, "root")
	other := testpki.NewCA(t, "another root")
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)

	tests := []struct {
		name    string
		issuer  *testpki.CA
		cn, uri string
		keyOf   string // "" for the certificate's own key, "other" for another
		err     string
	}{
		{name: "right", issuer: ca, cn: "GW-1", uri: "urn:gwpki:gateway:GW-1"},
		{name: "another CA", issuer: other, cn: "GW-1", uri: "urn:gwpki:gateway:GW-1", err: "unknown authority"},
		{name: "another gateway", issuer: ca, cn: "GW-2", uri: "urn:gwpki:gateway:GW-2", err: "want \"GW-1\""},
		{name: "wrong URI", issuer: ca, cn: "GW-1", uri: "urn:gwpki:gateway:GW-2", err: "URIs"},
		{name: "another key", issuer: ca, cn: "GW-1", uri: "urn:gwpki:gateway:GW-1", keyOf: "other", err: "private key does not match"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeLeaf(t, dir, tt.issuer, tt.cn, tt.uri, tt.keyOf == "other")
			_, err := checkCertificate(dir, "GW-1", roots)
			if tt.err == "" {
				if err != nil {
					t.Errorf("checkCertificate of %s: %v", tt.name, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("checkCertificate of %s: error %v; want one containing %q", tt.name, err, tt.err)
			}
		})
	}
}

// writeLeaf writes dir/idevid.crt, issued by ca for cn and uri, and
// dir/idevid.key: its key, or another one when wrongKey.
func writeLeaf(tb testing.TB, dir string, ca *testpki.CA, cn, uri string, wrongKey bool) {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	u, err := url.Parse(uri)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: cn},
		URIs:         []*url.URL{u},
		NotBefore:    time.Now().Add(-time.Minute),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.Key)
	if err != nil {
		tb.Fatal(err)
	}
	if wrongKey {
		if key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
			tb.Fatal(err)
		}
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		tb.Fatal(err)
	}
	crt := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if err := os.WriteFile(filepath.Join(dir, "idevid.crt"), crt, 0o644); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "idevid.key"),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		tb.Fatal(err)
	}
}

func TestCheckManifest(t *testing.T) {
	serials := []string{"PB-000001", "PB-000002", "PB-000003"}
	line := func(s string) string { return `{"serial":"` + s + `","idevid_serial":"1","model":"M1"}` + "\n" }
	tests := []struct {
		name, content, err string
	}{
		{name: "complete", content: line("PB-000001") + line("PB-000002") + line("PB-000003")},
		{name: "one missing", content: line("PB-000001") + line("PB-000002"), err: "2 lines; want 3"},
		{name: "out of order", content: line("PB-000002") + line("PB-000001") + line("PB-000003"), err: "line 1 is gateway \"PB-000002\""},
		{name: "one too many", content: line("PB-000001") + line("PB-000002") + line("PB-000003") + line("PB-000004"), err: "line 4"},
		{name: "not JSON", content: line("PB-000001") + "PB-000002\n", err: "line 2"},
		{name: "empty", content: "", err: "0 lines"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "manifest.jsonl")
			if err := os.WriteFile(path, []byte(tt.content), 0o644); err != nil {
				t.Fatal(err)
			}
			err := checkManifest(path, serials)
			if tt.err == "" {
				if err != nil {
					t.Errorf("checkManifest of a %s manifest: %v", tt.name, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("checkManifest of a manifest with %s: error %v; want one containing %q", tt.name, err, tt.err)
			}
		})
	}
}
