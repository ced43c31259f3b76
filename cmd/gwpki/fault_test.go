package main

import (
	"bytes"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	mqttc "github.com/eclipse/paho.mqtt.golang"
	"golang.org/x/crypto/ocsp"

	"github.com/gwpki/gwpki/ca"
	"github.com/gwpki/gwpki/claim"
	"github.com/gwpki/gwpki/gateway"
	"github.com/gwpki/gwpki/provisioning"
)

// TestSIGKILLUnderMixedLoad puts four kinds of load on one gwpki serve at
// once: station-token signs on step-ca's /1.0/sign, a `gwpki provision`
// batch (sign and registration), installers claiming gateways over
// /v1/claims with their label or display codes, and gateways publishing
// QoS 1 telemetry over MQTT. Once every stream has had its share of
// acknowledgements the server is killed with SIGKILL. Both bbolt files must
// then pass bbolt's own check, opened read-only before anything touches
// them, and after a restart on the same directory everything acknowledged
// before the kill must be there: each certificate answered (201) is "good"
// by OCSP, each bundle the batch wrote is registered with its certificate,
// each claim answered 200 is claimed by the installer's organisation, and
// each message acknowledged (PUBACK) is stored exactly once.
func TestSIGKILLUnderMixedLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the server twice under load")
	}
	bin := gwpkiBinary(t)
	dir := filepath.Join(t.TempDir(), "d")
	run(t, bin, "init", "--dir", dir, "--hostname", "127.0.0.1")
	stationFile := filepath.Join(t.TempDir(), "station.json")
	run(t, bin, "station", "add", "line1", "--dir", dir, "--out", stationFile)
	station, err := provisioning.LoadStation(stationFile)
	if err != nil {
		t.Fatal(err)
	}
	cmd, ready := startServe(t, bin, dir)
	rootPath := ca.Layout{Dir: dir}.RootCert()

	// The gateways that publish and the ones the installers claim are
	// provisioned before the load starts.
	const (
		publishers = 4   // gateways publishing QoS 1
		window     = 8   // unacknowledged messages per publisher
		claimable  = 160 // gateways waiting to be claimed
		installers = 4   // one claim in flight each
		signers    = 6   // sign requests in flight
		signBodies = 800
		// The kill comes once every stream has at least this many
		// acknowledgements; the streams keep going until then.
		killSigns, killRegistrations, killClaims, killMessages = 300, 40, 50, 1000
	)
	pool := filepath.Join(t.TempDir(), "pool")
	run(t, bin, "provision", "--ca", ready.APIURL, "--root", rootPath, "--station", stationFile,
		"--out", pool, "--serial-prefix", "FLT-", "--count", strconv.Itoa(publishers+claimable))
	adminPassword, err := os.ReadFile(ca.Layout{Dir: dir}.AdminPassword())
	if err != nil {
		t.Fatal(err)
	}
	admin := apiLogin(t, dir, ready.APIURL, "admin", strings.TrimSpace(string(adminPassword)))
	type installer struct{ name, org, token string }
	var crew []installer
	for i := range installers {
		in := installer{name: fmt.Sprintf("inst%d", i), org: []string{"acme", "globex"}[i%2]}
		apiPostOK(t, dir, ready.APIURL+"/v1/users", admin,
			fmt.Sprintf(`{"username":%q,"org":%q,"role":"installer","password":"%s password"}`, in.name, in.org, in.name))
		in.token = apiLogin(t, dir, ready.APIURL, in.name, in.name+" password")
		crew = append(crew, in)
	}
	claimQueue := make(chan *gateway.Bundle, claimable)
	for i := publishers + 1; i <= publishers+claimable; i++ {
		b, err := gateway.LoadBundle(filepath.Join(pool, fmt.Sprintf("FLT-%06d", i)))
		if err != nil {
			t.Fatal(err)
		}
		claimQueue <- b
	}
	close(claimQueue)

	// Sign requests are prepared before the load, so that the server, not
	// the client, is busy when it dies.
	bodies := faultSignBodies(t, station, ready.APIURL, signBodies)

	// Publishers connect before the load starts.
	rootPEM, err := os.ReadFile(rootPath)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(rootPEM)
	clients := make([]mqttc.Client, publishers)
	for g := range publishers {
		serial := fmt.Sprintf("FLT-%06d", g+1)
		cert := operationalCert(t, filepath.Join(pool, serial), ready.APIURL)
		c := connectPublisher(t, ready.MQTTURL, roots, serial, cert, window)
		clients[g] = c
	}

	// What was acknowledged before the kill. killed is closed just before
	// the signal is sent: an error seen while it is still open is a fault
	// of the live server, not of the kill.
	var (
		mu         sync.Mutex
		signed     []string              // serials of certificates answered 201
		claimed    = map[string]string{} // gateway serial -> organisation, answered 200
		acked      = map[string]bool{}   // payloads acknowledged with PUBACK
		nSigned    atomic.Int64
		nClaimed   atomic.Int64
		nAcked     atomic.Int64
		cutSigns   atomic.Int64 // requests cut off by the kill, per stream
		cutClaims  atomic.Int64
		cutPublish atomic.Int64
	)
	killed := make(chan struct{})
	isKilled := func() bool {
		select {
		case <-killed:
			return true
		default:
			return false
		}
	}
	// failed reports an error of a stream: expected once the server is
	// being killed, a test failure before.
	failed := func(what string, err error, cut *atomic.Int64) {
		if isKilled() {
			cut.Add(1)
			return
		}
		t.Errorf("%s before the kill: %v", what, err)
	}
	var load sync.WaitGroup

	// Stream 1: station-token signs on /1.0/sign.
	signClient := apiClient(t, dir)
	jobs := make(chan []byte)
	for range signers {
		load.Go(func() {
			for body := range jobs {
				serial, err := issue(signClient, ready.APIURL, body)
				if err != nil {
					failed("sign", err, &cutSigns)
					continue
				}
				mu.Lock()
				signed = append(signed, serial)
				mu.Unlock()
				nSigned.Add(1)
			}
		})
	}
	load.Go(func() {
		defer close(jobs)
		for _, b := range bodies {
			select {
			case jobs <- b:
			case <-killed:
				return
			}
		}
	})

	// Stream 2: a provision batch, a real line station: sign, then
	// register; a bundle in its output is an answered registration.
	regOut := filepath.Join(t.TempDir(), "reg")
	provision := exec.Command(bin, "provision", "--ca", ready.APIURL, "--root", rootPath, "--station", stationFile,
		"--out", regOut, "--serial-prefix", "REG-", "--count", "5000", "--concurrency", "4")
	var provisionLog bytes.Buffer
	provision.Stdout, provision.Stderr = &provisionLog, &provisionLog
	if err := provision.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { provision.Process.Kill(); provision.Wait() })

	// Stream 3: installers claim the pool, alternating label and display
	// codes, one claim in flight each.
	claimClient := apiClient(t, dir)
	for i, in := range crew {
		load.Go(func() {
			for b := range claimQueue {
				if isKilled() {
					return
				}
				code := b.LabelCode
				if i%2 == 1 {
					code = b.DisplayCode(time.Now())
				}
				ans, err := faultClaim(claimClient, ready.APIURL, in.token, b.Serial, code)
				if err != nil {
					failed("claim "+b.Serial, err, &cutClaims)
					continue
				}
				if ans.Device.State != claim.StateClaimed || ans.Device.Org != in.org {
					t.Errorf("claim %s answered 200 with %+v; want claimed by %s", b.Serial, ans.Device, in.org)
				}
				mu.Lock()
				claimed[b.Serial] = in.org
				mu.Unlock()
				nClaimed.Add(1)
			}
		})
	}

	// Stream 4: QoS 1 telemetry, up to window unacknowledged per gateway.
	var pubacks sync.WaitGroup // waiters of published messages
	for g, c := range clients {
		serial := fmt.Sprintf("FLT-%06d", g+1)
		slots := make(chan struct{}, window)
		load.Go(func() {
			for seq := 0; ; seq++ {
				select {
				case slots <- struct{}{}:
				case <-killed:
					return
				}
				payload := fmt.Sprintf(`{"gw":%q,"seq":%d}`, serial, seq)
				tok := c.Publish("gw/"+serial+"/telemetry", 1, false, payload)
				pubacks.Go(func() {
					defer func() { <-slots }()
					if !tok.WaitTimeout(30 * time.Second) {
						failed("publish "+payload, errors.New("no PUBACK in 30 s"), &cutPublish)
						return
					}
					if err := tok.Error(); err != nil {
						failed("publish "+payload, err, &cutPublish)
						return
					}
					mu.Lock()
					acked[payload] = true
					mu.Unlock()
					nAcked.Add(1)
				})
			}
		})
	}

	// The kill: when every stream has its share, counted, not timed.
	deadline := time.Now().Add(2 * time.Minute)
	var atKill string
	for {
		s, r, c, m := nSigned.Load(), int64(faultRegistrations(regOut)), nClaimed.Load(), nAcked.Load()
		if s >= killSigns && r >= killRegistrations && c >= killClaims && m >= killMessages {
			atKill = fmt.Sprintf("%d signs, %d registrations, %d claims, %d messages", s, r, c, m)
			break
		}
		if time.Now().After(deadline) {
			close(killed)
			cmd.Process.Signal(syscall.SIGKILL)
			t.Fatalf("the load did not reach the kill point in 2 minutes: %d signs, %d registrations, %d claims, %d messages; provision:\n%s",
				s, r, c, m, provisionLog.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	close(killed)
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	load.Wait()
	pubacks.Wait()
	cmd.Wait()
	// The station retries a dead server for a while; its bundles are what
	// it had been answered.
	provision.Process.Signal(syscall.SIGKILL)
	provision.Wait()
	registered, cutBundles := faultBundles(t, regOut)

	mu.Lock()
	defer mu.Unlock()
	t.Logf("kill point reached at %s; cut off in flight: %d signs, %d claims, %d publishes; %d bundles half-written; %d gateways left unclaimed in the pool",
		atKill, cutSigns.Load(), cutClaims.Load(), cutPublish.Load(), cutBundles, len(claimQueue))

	// Both files the killed server left are consistent, by bbolt's own
	// check, before anything opens them for writing.
	checkBoltFile(t, ca.Layout{Dir: dir}.Database())
	checkBoltFile(t, ca.Layout{Dir: dir}.Telemetry())

	// Restarted on the same directory, the server has all of it.
	_, ready = startServe(t, bin, dir)
	admin = apiLogin(t, dir, ready.APIURL, "admin", strings.TrimSpace(string(adminPassword)))
	api := apiClient(t, dir)
	issuer := faultIssuer(t, dir)

	// Certificates: every one answered is "good" by OCSP (a serial the CA
	// never stored is "unknown").
	certs := append([]string(nil), signed...)
	for _, b := range registered {
		certs = append(certs, b.IDevIDSerial)
	}
	lost := 0
	for _, serial := range certs {
		status, err := faultOcspStatus(api, ready.HTTPURL, issuer, serial)
		if err != nil {
			t.Fatalf("OCSP for %s: %v", serial, err)
		}
		if status != ocsp.Good {
			lost++
			t.Errorf("certificate %s was answered before SIGKILL; OCSP says %s after the restart", serial, faultOcspName(status))
		}
	}

	// Registrations: each bundle's gateway is registered with the bundle's
	// birth certificate.
	for _, b := range registered {
		var dev claim.Device
		if status, err := faultGet(api, ready.APIURL+"/v1/devices/"+b.Serial, admin, &dev); err != nil || status != http.StatusOK {
			lost++
			t.Errorf("gateway %s was registered before SIGKILL; GET /v1/devices/%s = %d %v", b.Serial, b.Serial, status, err)
			continue
		}
		if dev.IDevIDSerial != b.IDevIDSerial {
			lost++
			t.Errorf("gateway %s is registered with birth certificate %s; its bundle has %s", b.Serial, dev.IDevIDSerial, b.IDevIDSerial)
		}
	}

	// Claims: each gateway claimed is its installer's organisation's.
	for serial, org := range claimed {
		var dev claim.Device
		status, err := faultGet(api, ready.APIURL+"/v1/devices/"+serial, admin, &dev)
		if err != nil || status != http.StatusOK {
			t.Fatalf("GET /v1/devices/%s = %d %v", serial, status, err)
		}
		if dev.State != claim.StateClaimed || dev.Org != org {
			lost++
			t.Errorf("gateway %s was claimed by %s before SIGKILL; after the restart it is %q of %q", serial, org, dev.State, dev.Org)
		}
	}

	// Telemetry: every message acknowledged is stored, and none twice.
	stored := map[string]int{}
	for g := range publishers {
		serial := fmt.Sprintf("FLT-%06d", g+1)
		countStoredTelemetry(t, dir, ready.APIURL, admin, serial, stored)
	}
	for p := range acked {
		if stored[p] == 0 {
			lost++
			t.Errorf("message %s was acknowledged before SIGKILL; not stored after the restart", p)
		}
	}
	for p, n := range stored {
		if n > 1 {
			t.Errorf("message %s stored %d times; want once", p, n)
		}
	}

	verdict := "all found after restart"
	if lost > 0 {
		verdict = fmt.Sprintf("%d missing after restart", lost)
	}
	t.Logf("%s certificates (%s signed, %s provisioned and registered), %s claims, %s messages acknowledged before SIGKILL; %s",
		faultThousands(len(certs)), faultThousands(len(signed)), faultThousands(len(registered)),
		faultThousands(len(claimed)), faultThousands(len(acked)), verdict)
}

// faultSignBodies prepares n sign requests (a fresh key and CSR, a station
// token) on every CPU.
func faultSignBodies(t *testing.T, station *provisioning.Station, apiURL string, n int) [][]byte {
	t.Helper()
	bodies := make([][]byte, n)
	errs := make([]error, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < n; i = int(next.Add(1)) - 1 {
				serial := fmt.Sprintf("SIGN-%06d", i)
				_, csr, err := provisioning.NewGatewayKey(serial)
				if err != nil {
					errs[i] = err
					continue
				}
				tok, err := station.Token(serial, provisioning.SignURL(apiURL), time.Now())
				if err != nil {
					errs[i] = err
					continue
				}
				bodies[i], errs[i] = json.Marshal(map[string]string{"csr": string(csr), "ott": tok})
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	return bodies
}

// faultClaim posts a claim and returns the 200 answer; any other answer is
// an error.
func faultClaim(c *http.Client, apiURL, token, serial, code string) (claim.ClaimAnswer, error) {
	var ans claim.ClaimAnswer
	body, _ := json.Marshal(claim.ClaimBody{Serial: serial, Code: code})
	req, err := http.NewRequest(http.MethodPost, apiURL+"/v1/claims", bytes.NewReader(body))
	if err != nil {
		return ans, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := c.Do(req)
	if err != nil {
		return ans, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return ans, err
	}
	if resp.StatusCode != http.StatusOK {
		return ans, fmt.Errorf("status %d %s", resp.StatusCode, data)
	}
	return ans, json.Unmarshal(data, &ans)
}

// faultGet gets u with token on c and decodes a 200 answer into v.
func faultGet(c *http.Client, u, token string, v any) (int, error) {
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, nil
	}
	return resp.StatusCode, json.NewDecoder(resp.Body).Decode(v)
}

// faultRegistrations counts the gateways whose registration a batch writing
// to out has been answered: a bundle's gateway.json is written only then,
// first in the work area out/.pending/<serial>, then moved into out whole
// with the rest of its group.
func faultRegistrations(out string) int {
	n := 0
	for _, d := range []string{out, filepath.Join(out, ".pending")} {
		entries, _ := os.ReadDir(d)
		for _, e := range entries {
			if e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
				if _, err := os.Stat(filepath.Join(d, e.Name(), provisioning.GatewayFile)); err == nil {
					n++
				}
			}
		}
	}
	return n
}

// faultBundles reads, once the batch writing to out is dead, the bundles of
// every gateway whose registration was answered: those moved into out and
// those still in its work area, out/.pending. A gateway.json the kill cut
// short is not counted (skipped reports how many).
func faultBundles(t *testing.T, out string) (bundles []*gateway.Bundle, skipped int) {
	t.Helper()
	for _, d := range []string{out, filepath.Join(out, ".pending")} {
		entries, err := os.ReadDir(d)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		for _, e := range entries {
			if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
				continue
			}
			if _, err := os.Stat(filepath.Join(d, e.Name(), provisioning.GatewayFile)); err != nil {
				continue // registration not answered yet
			}
			b, err := gateway.LoadBundle(filepath.Join(d, e.Name()))
			if err != nil {
				if d == out {
					t.Fatal(err) // moved into place whole: must be readable
				}
				skipped++
				continue
			}
			bundles = append(bundles, b)
		}
	}
	return bundles, skipped
}

// faultIssuer reads the issuing CA's certificate.
func faultIssuer(t *testing.T, dir string) *x509.Certificate {
	t.Helper()
	data, err := os.ReadFile(ca.Layout{Dir: dir}.IntermediateCert())
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(data)
	if block == nil {
		t.Fatal("no PEM in the intermediate certificate file")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// faultOcspStatus asks the server's OCSP responder about the decimal serial
// and returns the verified status.
func faultOcspStatus(c *http.Client, httpURL string, issuer *x509.Certificate, serial string) (int, error) {
	n, ok := new(big.Int).SetString(serial, 10)
	if !ok {
		return 0, fmt.Errorf("serial %q is not a decimal number", serial)
	}
	req, err := ocsp.CreateRequest(&x509.Certificate{SerialNumber: n}, issuer, nil)
	if err != nil {
		return 0, err
	}
	resp, err := c.Post(httpURL+"/ocsp", "application/ocsp-request", bytes.NewReader(req))
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("status %d", resp.StatusCode)
	}
	r, err := ocsp.ParseResponse(data, issuer)
	if err != nil {
		return 0, err
	}
	if r.SerialNumber.Cmp(n) != 0 {
		return 0, fmt.Errorf("answer for serial %s", r.SerialNumber)
	}
	return r.Status, nil
}

func faultOcspName(status int) string {
	switch status {
	case ocsp.Good:
		return "good"
	case ocsp.Revoked:
		return "revoked"
	}
	return "unknown"
}

// faultThousands formats n with a comma between thousands: 1,380.
func faultThousands(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
