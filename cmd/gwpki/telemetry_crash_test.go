package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	mqttc "github.com/eclipse/paho.mqtt.golang"
	bolt "go.etcd.io/bbolt"

	"github.com/gwpki/gwpki/bootstrap"
	"github.com/gwpki/gwpki/ca"
	"github.com/gwpki/gwpki/gateway"
	"github.com/gwpki/gwpki/provisioning"
	"github.com/gwpki/gwpki/telemetry"
)

// operationalCert bootstraps the gateway of bundle dir against apiURL and
// returns its operational certificate and key.
func operationalCert(t *testing.T, dir, apiURL string) tls.Certificate {
	t.Helper()
	b, err := gateway.LoadBundle(dir)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := b.TLSConfig()
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := provisioning.GatewayCSR(b.Serial, key)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(bootstrap.Request{CSR: string(csr)})
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}
	resp, err := client.Post(apiURL+"/v1/bootstrap", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var ans bootstrap.Answer
	if resp.StatusCode != http.StatusOK || json.Unmarshal(data, &ans) != nil {
		t.Fatalf("bootstrap %s = %d %s", b.Serial, resp.StatusCode, data)
	}
	cert := tls.Certificate{PrivateKey: key}
	rest := []byte(ans.Certificate)
	for {
		var block *pem.Block
		if block, rest = pem.Decode(rest); block == nil {
			break
		}
		cert.Certificate = append(cert.Certificate, block.Bytes)
	}
	return cert
}

// TestCrashKeepsAcknowledgedTelemetry kills gwpki serve with SIGKILL in the
// middle of a QoS 1 burst from several gateways: after a restart every
// message that was acknowledged (PUBACK) is stored, exactly once, and the
// telemetry file is consistent.
func TestCrashKeepsAcknowledgedTelemetry(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the server twice")
	}
	bin := gwpkiBinary(t)
	dir := filepath.Join(t.TempDir(), "d")
	run(t, bin, "init", "--dir", dir, "--hostname", "127.0.0.1")
	stationFile := filepath.Join(t.TempDir(), "station.json")
	run(t, bin, "station", "add", "line1", "--dir", dir, "--out", stationFile)
	cmd, ready := startServe(t, bin, dir)
	out := filepath.Join(t.TempDir(), "out")
	run(t, bin, "provision", "--ca", ready.APIURL, "--root", ca.Layout{Dir: dir}.RootCert(), "--station", stationFile,
		"--out", out, "--serial-prefix", "KILL-", "--count", "4")
	root, _ := os.ReadFile(ca.Layout{Dir: dir}.RootCert())
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(root)

	// Each gateway publishes QoS 1 as fast as its acknowledgements come,
	// with up to 16 unacknowledged; the server dies after killAfter acks.
	const gateways, window, killAfter = 4, 16, 1500
	var mu sync.Mutex
	acked := map[string]bool{}
	killed := make(chan struct{})
	var killOnce sync.Once
	var wg sync.WaitGroup
	for g := 1; g <= gateways; g++ {
		serial := fmt.Sprintf("KILL-%06d", g)
		cert := operationalCert(t, filepath.Join(out, serial), ready.APIURL)
		c := connectPublisher(t, ready.MQTTURL, roots, serial, cert, window)
		slots := make(chan struct{}, window)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seq := 0; ; seq++ {
				select {
				case slots <- struct{}{}:
				case <-killed:
					return
				}
				payload := fmt.Sprintf(`{"gw":%q,"seq":%d}`, serial, seq)
				tok := c.Publish("gw/"+serial+"/telemetry", 1, false, payload)
				go func() {
					defer func() { <-slots }()
					if !tok.WaitTimeout(20*time.Second) || tok.Error() != nil {
						return // cut off by the kill: not acknowledged
					}
					mu.Lock()
					acked[payload] = true
					n := len(acked)
					mu.Unlock()
					if n == killAfter {
						killOnce.Do(func() {
							cmd.Process.Signal(syscall.SIGKILL)
							close(killed)
						})
					}
				}()
			}
		}()
	}
	select {
	case <-killed:
	case <-time.After(2 * time.Minute):
		t.Fatal("the burst did not reach the kill point in 2 minutes")
	}
	wg.Wait()
	cmd.Wait()

	// The file the killed server left is consistent, by bbolt's own check.
	checkBoltFile(t, ca.Layout{Dir: dir}.Telemetry())

	// Restarted, the server has every acknowledged message, once.
	_, ready = startServe(t, bin, dir)
	adminPassword, _ := os.ReadFile(ca.Layout{Dir: dir}.AdminPassword())
	token := apiLogin(t, dir, ready.APIURL, "admin", strings.TrimSpace(string(adminPassword)))
	stored := map[string]int{}
	for g := 1; g <= gateways; g++ {
		serial := fmt.Sprintf("KILL-%06d", g)
		countStoredTelemetry(t, dir, ready.APIURL, token, serial, stored)
	}
	mu.Lock()
	defer mu.Unlock()
	missing, twice := 0, 0
	for p := range acked {
		if stored[p] == 0 {
			missing++
		}
	}
	for p, n := range stored {
		if n > 1 {
			twice++
			t.Errorf("message %s stored %d times", p, n)
		}
	}
	t.Logf("%d messages acknowledged before SIGKILL; %d stored after the restart", len(acked), len(stored))
	if missing > 0 {
		t.Fatalf("%d acknowledged messages are missing after SIGKILL", missing)
	}
	if twice > 0 {
		t.Fatalf("%d messages stored more than once", twice)
	}
}

// apiLogin logs user in to the API at apiURL and returns the token.
func apiLogin(t *testing.T, dir, apiURL, user, password string) string {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"username": user, "password": password})
	resp, err := apiClient(t, dir).Post(apiURL+"/v1/login", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var ans struct{ Token string }
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&ans) != nil {
		t.Fatalf("login %s = %d", user, resp.StatusCode)
	}
	return ans.Token
}

// apiGet gets u with token and decodes the 200 answer into v.
func apiGet(t *testing.T, dir, u, token string, v any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := apiClient(t, dir).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET %s = %d %s", u, resp.StatusCode, b)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
}

// countStoredTelemetry adds one to stored[payload] for every message the
// server holds on gw/<serial>/telemetry, reading every page of the API.
func countStoredTelemetry(t *testing.T, dir, apiURL, token, serial string, stored map[string]int) {
	t.Helper()
	after := ""
	for {
		var page telemetry.Page
		path := "/v1/devices/" + serial + "/telemetry?limit=1000"
		if after != "" {
			path += "&after=" + url.QueryEscape(after)
		}
		apiGet(t, dir, apiURL+path, token, &page)
		for _, m := range page.Messages {
			if m.Topic == "gw/"+serial+"/telemetry" {
				stored[string(m.Payload)]++
			}
		}
		if after = page.Next; after == "" {
			return
		}
	}
}

// connectPublisher connects serial to the broker at mqttURL with its
// operational certificate, for QoS 1 with up to window unacknowledged
// messages; the test's end disconnects it.
func connectPublisher(t *testing.T, mqttURL string, roots *x509.CertPool, serial string, cert tls.Certificate, window int) mqttc.Client {
	t.Helper()
	opts := mqttc.NewClientOptions().
		AddBroker(strings.Replace(mqttURL, "mqtts://", "tls://", 1)).
		SetClientID(serial).
		SetTLSConfig(&tls.Config{RootCAs: roots, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}).
		SetAutoReconnect(false).SetConnectRetry(false).SetCleanSession(true).
		SetMaxResumePubInFlight(window)
	c := mqttc.NewClient(opts)
	if tok := c.Connect(); !tok.WaitTimeout(15*time.Second) || tok.Error() != nil {
		t.Fatalf("connect %s: %v", serial, tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(0) })
	return c
}

// checkBoltFile runs bbolt's consistency check on the file at path, opened
// read-only: after a SIGKILL, the file the killed server left.
func checkBoltFile(t *testing.T, path string) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second, ReadOnly: true})
	if err != nil {
		t.Fatalf("open %s after SIGKILL: %v", path, err)
	}
	defer db.Close()
	err = db.View(func(tx *bolt.Tx) error {
		var errs []error
		for err := range tx.Check() {
			errs = append(errs, err)
		}
		return errors.Join(errs...)
	})
	if err != nil {
		t.Fatalf("%s after SIGKILL: %v", filepath.Base(path), err)
	}
}
