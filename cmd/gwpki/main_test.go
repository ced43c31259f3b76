package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"go/build"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/gwpki/gwpki/internal/server"
)

// TestMain lets scripts run this test binary as the real gwpki command, in
// its own process, so signals and exit codes are the binary's.
func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"gwpki": main,
	})
}

// TestScripts runs the end-to-end scenarios in testdata/script against the
// binary and the real peers (step, openssl, softhsm2-util).
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/script",
		RequireExplicitExec: true,
		Setup: func(env *testscript.Env) error {
			// Keep each script's step and gwpki client state in its sandbox,
			// and find `go install`ed peers such as step.
			env.Setenv("STEPPATH", filepath.Join(env.WorkDir, ".step"))
			env.Setenv("GWPKI_CONFIG_DIR", filepath.Join(env.WorkDir, ".gwpki"))
			env.Setenv("HOME", env.WorkDir)
			// Under -race every gwpki process sleeps a second at exit (for
			// late reports); scripts run dozens of them.
			env.Setenv("GORACE", "atexit_sleep_ms=100")
			env.Setenv("PATH", env.Getenv("PATH")+string(os.PathListSeparator)+filepath.Join(build.Default.GOPATH, "bin"))
			return nil
		},
		Condition: peerCondition,
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"waitready": cmdWaitReady,
			"signal":    cmdSignal,
			"setenv":    cmdSetenvStdout,
			"httpget":   cmdHTTPGet,
			"mode":      cmdMode,
			"tlscert":   cmdTLSCert,
			"fetchcrl":  cmdFetchCRL,
			"sleep":     cmdSleep,
			"jsonwrap":  cmdJSONWrap,
			"jsonget":   cmdJSONGet,
		},
	})
}

// waitready FILE: wait for `gwpki serve --ready-file FILE`, then export
// API_URL, HTTP_URL, MQTT_URL, MQTT_PORT and SERVE_PID.
func cmdWaitReady(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: waitready FILE")
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		b, err := os.ReadFile(ts.MkAbs(args[0]))
		if err == nil {
			var r server.Ready
			ts.Check(json.Unmarshal(b, &r))
			ts.Setenv("API_URL", r.APIURL)
			ts.Setenv("HTTP_URL", r.HTTPURL)
			ts.Setenv("MQTT_URL", r.MQTTURL)
			if i := strings.LastIndexByte(r.MQTTURL, ':'); i >= 0 {
				ts.Setenv("MQTT_PORT", r.MQTTURL[i+1:])
			}
			ts.Setenv("SERVE_PID", strconv.Itoa(r.PID))
			return
		}
		if time.Now().After(deadline) {
			ts.Fatalf("%s did not appear within 60s", args[0])
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// signal TERM|HUP|KILL PID: send a signal to a process.
func cmdSignal(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: signal TERM|HUP|KILL PID")
	}
	sigs := map[string]syscall.Signal{"TERM": syscall.SIGTERM, "HUP": syscall.SIGHUP, "KILL": syscall.SIGKILL}
	sig, ok := sigs[args[0]]
	if !ok {
		ts.Fatalf("unknown signal %s", args[0])
	}
	pid, err := strconv.Atoi(args[1])
	ts.Check(err)
	ts.Check(syscall.Kill(pid, sig))
}

// setenv NAME: set NAME to the previous command's standard output, trimmed.
// setenv NAME [REGEXP]: set NAME to the last command's stdout, trimmed, or
// to the first group REGEXP matches in it.
func cmdSetenvStdout(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 1 || len(args) > 2 {
		ts.Fatalf("usage: setenv NAME [REGEXP]")
	}
	out := strings.TrimSpace(ts.ReadFile("stdout"))
	if len(args) == 2 {
		m := regexp.MustCompile(args[1]).FindStringSubmatch(out)
		if len(m) < 2 {
			ts.Fatalf("setenv %s: %q has no group matching %s", args[0], out, args[1])
		}
		out = m[1]
	}
	ts.Setenv(args[0], out)
}

// sleep DURATION: wait, for what the server picks up by polling (the
// station list every 500 ms).
func cmdSleep(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: sleep DURATION")
	}
	d, err := time.ParseDuration(args[0])
	ts.Check(err)
	time.Sleep(d)
}

// fetchcrl [-listed] CERT FILE: download the CRL that CERT's distribution
// point names into FILE (DER). With -listed, wait up to ten seconds until
// that CRL lists CERT's serial.
func cmdFetchCRL(ts *testscript.TestScript, neg bool, args []string) {
	listed := len(args) == 3 && args[0] == "-listed"
	if listed {
		args = args[1:]
	}
	if neg || len(args) != 2 {
		ts.Fatalf("usage: fetchcrl [-listed] CERT FILE")
	}
	block, _ := pem.Decode([]byte(ts.ReadFile(args[0])))
	if block == nil {
		ts.Fatalf("%s: no PEM certificate", args[0])
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	ts.Check(err)
	if len(cert.CRLDistributionPoints) != 1 {
		ts.Fatalf("%s: %d CRL distribution points; want 1", args[0], len(cert.CRLDistributionPoints))
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(cert.CRLDistributionPoints[0])
		ts.Check(err)
		der, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		ts.Check(err)
		if resp.StatusCode != http.StatusOK {
			ts.Fatalf("GET %s: status %d", cert.CRLDistributionPoints[0], resp.StatusCode)
		}
		crl, err := x509.ParseRevocationList(der)
		ts.Check(err)
		found := slices.ContainsFunc(crl.RevokedCertificateEntries, func(e x509.RevocationListEntry) bool {
			return e.SerialNumber.Cmp(cert.SerialNumber) == 0
		})
		if !listed || found {
			ts.Check(os.WriteFile(ts.MkAbs(args[1]), der, 0o644))
			return
		}
		if time.Now().After(deadline) {
			ts.Fatalf("%s: serial %X not listed after 10s", cert.CRLDistributionPoints[0], cert.SerialNumber)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// httpget URL: GET a plain-HTTP URL; prints "status N" and the body.
func cmdHTTPGet(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 {
		ts.Fatalf("usage: httpget URL")
	}
	resp, err := http.Get(args[0])
	ts.Check(err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	ts.Check(err)
	fmt.Fprintf(ts.Stdout(), "status %d\n%s", resp.StatusCode, body)
	if ok := resp.StatusCode < 400; ok == neg {
		ts.Fatalf("GET %s: status %d", args[0], resp.StatusCode)
	}
}

// mode PERM FILE...: check files' permission bits.
func cmdMode(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: mode PERM FILE...")
	}
	want, err := strconv.ParseUint(args[0], 8, 32)
	ts.Check(err)
	for _, f := range args[1:] {
		fi, err := os.Stat(ts.MkAbs(f))
		ts.Check(err)
		if got := fi.Mode().Perm(); got != os.FileMode(want) {
			ts.Fatalf("%s: mode %o; want %o", f, got, want)
		}
	}
}

// tlscert URL ROOT: connect to an HTTPS URL trusting only ROOT, refusing
// anything older than TLS 1.2; prints the server certificate's serial and
// the negotiated version.
func cmdTLSCert(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: tlscert URL ROOT")
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM([]byte(ts.ReadFile(args[1]))) {
		ts.Fatalf("no certificate in %s", args[1])
	}
	host := strings.TrimPrefix(args[0], "https://")
	conn, err := tls.Dial("tcp", host, &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12})
	ts.Check(err)
	defer conn.Close()
	st := conn.ConnectionState()
	fmt.Fprintf(ts.Stdout(), "serial %s\nversion %s\n", st.PeerCertificates[0].SerialNumber, tls.VersionName(st.Version))
}

// peerCondition answers [peer:NAME]: whether the real peer program NAME is
// installed. Under CI (where make test installs every peer) a missing peer
// is an error, never a silent skip.
func peerCondition(cond string) (bool, error) {
	name, ok := strings.CutPrefix(cond, "peer:")
	if !ok {
		return false, fmt.Errorf("unknown condition %q", cond)
	}
	path := filepath.Join(build.Default.GOPATH, "bin", name)
	if _, err := os.Stat(path); err == nil {
		return true, nil
	}
	if _, err := exec.LookPath(name); err == nil {
		return true, nil
	}
	if os.Getenv("CI") != "" {
		return false, fmt.Errorf("peer %s is not installed; make test installs it", name)
	}
	return false, nil
}

// jsonwrap FIELD FILE OUT: write {"FIELD": <FILE's contents as a string>}
// to OUT, for request bodies that carry PEM (a CSR for /v1/bootstrap).
func cmdJSONWrap(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 3 {
		ts.Fatalf("usage: jsonwrap FIELD FILE OUT")
	}
	b, err := json.Marshal(map[string]string{args[0]: ts.ReadFile(args[1])})
	ts.Check(err)
	ts.Check(os.WriteFile(ts.MkAbs(args[2]), b, 0o644))
}

// jsonget FILE FIELD OUT: write the string field FIELD (a dotted path into
// objects) of the JSON object in FILE to OUT.
func cmdJSONGet(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 3 {
		ts.Fatalf("usage: jsonget FILE FIELD OUT")
	}
	var v any
	ts.Check(json.Unmarshal([]byte(ts.ReadFile(args[0])), &v))
	for _, k := range strings.Split(args[1], ".") {
		m, ok := v.(map[string]any)
		if !ok {
			ts.Fatalf("jsonget: %s is not an object at %s", args[0], k)
		}
		v = m[k]
	}
	s, ok := v.(string)
	if !ok {
		ts.Fatalf("jsonget: %s has no string %s", args[0], args[1])
	}
	ts.Check(os.WriteFile(ts.MkAbs(args[2]), []byte(s), 0o600))
}
