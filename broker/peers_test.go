package broker

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// requireTool skips the test when a real peer is not installed, except
// under CI, where `make test` installs them and their absence is a failure.
func requireTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s not on PATH (CI=true): `make test` installs it", name)
		}
		t.Skipf("%s not on PATH; install mosquitto-clients and openssl (`make test` does) to run this test", name)
	}
	return p
}

// run runs a peer with a timeout and returns its combined output and error.
func run(t *testing.T, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdin = strings.NewReader("")
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("%s %s: timed out\n%s", name, strings.Join(args, " "), out)
	}
	return string(out), err
}

// mosquittoPub runs mosquitto_pub as the gateway holding l.
func (e *env) mosquittoPub(t *testing.T, l *leaf, id, topic, msg string, extra ...string) (string, error) {
	t.Helper()
	args := []string{"-h", "127.0.0.1", "-p", e.port(), "--cafile", e.caFile, "--cert", l.CertFile, "--key", l.KeyFile,
		"-i", id, "-t", topic, "-q", "1", "-m", msg}
	return run(t, requireTool(t, "mosquitto_pub"), append(args, extra...)...)
}

func TestMosquittoPublishStored(t *testing.T) {
	e := newEnv(t, nil)
	gw := e.gateway(t, "GW1001")
	for _, version := range []string{"mqttv311", "mqttv5"} {
		t.Run(version, func(t *testing.T) {
			payload := `{"flow":3,"v":"` + version + `"}`
			out, err := e.mosquittoPub(t, gw, "GW1001", "gw/GW1001/telemetry", payload, "-d", "-V", version)
			if err != nil {
				t.Fatalf("mosquitto_pub: %v\n%s", err, out)
			}
			if !strings.Contains(out, "received PUBACK") || strings.Contains(out, "RC:1") {
				t.Errorf("mosquitto_pub got no successful PUBACK:\n%s", out)
			}
			if _, ok := e.sink.find("gw/GW1001/telemetry", []byte(payload)); !ok {
				t.Fatalf("sink holds %v; want the publish", e.sink.messages())
			}
		})
	}
}

func TestMosquittoPublishToAnotherGatewayDenied(t *testing.T) {
	e := newEnv(t, nil)
	gw := e.gateway(t, "GW1002")
	e.gateway(t, "GW1003")
	// MQTT 3.1.1 has no negative PUBACK: mochi disconnects the client.
	out, err := e.mosquittoPub(t, gw, "GW1002", "gw/GW1003/telemetry", "spoof", "-d")
	t.Logf("mosquitto_pub (err %v):\n%s", err, out)
	if err == nil || strings.Contains(out, "received PUBACK") {
		t.Errorf("publish to another gateway's topic acknowledged (err %v):\n%s", err, out)
	}
	// MQTT 5: a PUBACK with reason 0x87, not authorized.
	out, err = e.mosquittoPub(t, gw, "GW1002", "gw/GW1003/telemetry", "spoof", "-d", "-V", "mqttv5")
	t.Logf("mosquitto_pub -V mqttv5 (err %v):\n%s", err, out)
	if !strings.Contains(out, "RC:135") {
		t.Errorf("MQTT 5 publish to another gateway's topic: no PUBACK with RC 135 (err %v):\n%s", err, out)
	}
	if n := len(e.sink.messages()); n != 0 {
		t.Errorf("sink holds %d messages; want 0", n)
	}
	if !strings.Contains(e.logs(), "mqtt publish refused") {
		t.Errorf("refusal not logged:\n%s", e.logs())
	}
}

func TestMosquittoRefusedAtHandshake(t *testing.T) {
	e := newEnv(t, nil)
	birth := issue(t, e.ca, "GW1004", false)
	revoked := e.gateway(t, "GW1005")
	e.auth.revoke(revoked)
	unknown := issue(t, e.ca, "GW1006", false)
	foreign := issue(t, newEnv(t, nil).ca, "GW1007", false)
	for name, l := range map[string]*leaf{"birth": birth, "revoked": revoked, "unknown": unknown, "foreign CA": foreign} {
		t.Run(name, func(t *testing.T) {
			id := l.Cert.Subject.CommonName
			out, err := e.mosquittoPub(t, l, id, "gw/"+id+"/telemetry", "x")
			t.Logf("mosquitto_pub (err %v): %s", err, out)
			if err == nil {
				t.Fatalf("mosquitto_pub succeeded:\n%s", out)
			}
		})
	}
	if n := len(e.sink.messages()); n != 0 {
		t.Errorf("sink holds %d messages; want 0", n)
	}
	for _, l := range []*leaf{birth, revoked, unknown} {
		if !e.auth.asked(l.Serial) {
			t.Errorf("Authenticate not asked about %s at the handshake", l.Cert.Subject.CommonName)
		}
	}
	if e.auth.asked(foreign.Serial) {
		t.Error("Authenticate asked about a certificate from another CA")
	}
	if !strings.Contains(e.logs(), "mqtt handshake refused") {
		t.Errorf("refusal not logged:\n%s", e.logs())
	}
}

func TestMosquittoClientIDMustBeSerial(t *testing.T) {
	e := newEnv(t, nil)
	gw := e.gateway(t, "GW1008")
	out, err := e.mosquittoPub(t, gw, "someone-else", "gw/GW1008/telemetry", "x")
	if err == nil {
		t.Fatalf("mosquitto_pub with a foreign client id succeeded:\n%s", out)
	}
	if !strings.Contains(strings.ToLower(out), "identifier rejected") {
		t.Errorf("mosquitto_pub output %q; want identifier rejected", out)
	}
	if n := len(e.sink.messages()); n != 0 {
		t.Errorf("sink holds %d messages; want 0", n)
	}
}

func TestMosquittoSubReceivesClaimed(t *testing.T) {
	e := newEnv(t, nil)
	gw := e.gateway(t, "GW1009")
	e.claimed.Store("GW1009", true)
	out, err := run(t, requireTool(t, "mosquitto_sub"), "-h", "127.0.0.1", "-p", e.port(), "--cafile", e.caFile,
		"--cert", gw.CertFile, "--key", gw.KeyFile, "-i", "GW1009", "-t", "gw/GW1009/cmd/#", "-q", "1",
		"-C", "1", "-W", "10", "-v")
	if err != nil {
		t.Fatalf("mosquitto_sub: %v\n%s", err, out)
	}
	if want := `gw/GW1009/cmd/claimed {"claimed":true}`; strings.TrimSpace(out) != want {
		t.Errorf("mosquitto_sub printed %q; want %q", out, want)
	}
}

func TestOpenSSLRefusesTLS11(t *testing.T) {
	e := newEnv(t, nil)
	gw := e.gateway(t, "GW1010")
	openssl := requireTool(t, "openssl")
	args := []string{"s_client", "-connect", e.broker.Addr().String(), "-CAfile", e.caFile,
		"-cert", gw.CertFile, "-key", gw.KeyFile}
	// The same command at TLS 1.2 works: the refusal below is the broker's.
	if out, err := run(t, openssl, append(args, "-tls1_2")...); err != nil || !strings.Contains(out, "TLSv1.2") {
		t.Fatalf("openssl s_client -tls1_2: %v\n%s", err, out)
	}
	// SECLEVEL=0 lets OpenSSL 3 itself offer TLS 1.1.
	out, err := run(t, openssl, append(args, "-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0")...)
	t.Logf("openssl s_client -tls1_1 (err %v):\n%s", err, out)
	if err == nil {
		t.Fatalf("openssl s_client -tls1_1 succeeded:\n%s", out)
	}
	if !strings.Contains(out, "alert protocol version") {
		t.Errorf("openssl s_client -tls1_1 failed without a protocol alert from the broker:\n%s", out)
	}
}
