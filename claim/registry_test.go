package claim

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	bolt "go.etcd.io/bbolt"

	"github.com/gwpki/gwpki/internal/audit"
	"github.com/gwpki/gwpki/internal/store"
)

// regEnv is a Registry with its audit log on a store file in a temporary
// directory.
type regEnv struct {
	reg   *Registry
	audit *audit.Log
	db    *store.DB
	path  string
	clock *fakeClock
	logs  *syncBuffer
	// retired are the birth certificate serials the CA would call revoked
	// for good (the registry's RetiredCheck).
	retiredMu sync.Mutex
	retired   map[string]bool
}

// retire makes the CA's answer for the birth certificate serial "revoked
// for good".
func (env *regEnv) retire(serial string) {
	env.retiredMu.Lock()
	defer env.retiredMu.Unlock()
	if env.retired == nil {
		env.retired = map[string]bool{}
	}
	env.retired[serial] = true
}

func newRegEnv(t testing.TB) *regEnv {
	t.Helper()
	env := &regEnv{path: filepath.Join(t.TempDir(), "gwpki.db"), clock: newFakeClock(), logs: &syncBuffer{}}
	env.db = openTestDB(t, env.path)
	env.open(t)
	return env
}

// open builds a new Registry and audit log on env.db, as a server restart
// would.
func (env *regEnv) open(t testing.TB) {
	t.Helper()
	logger := slog.New(slog.NewTextHandler(env.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	var err error
	if env.audit, err = audit.New(env.db, audit.WithClock(env.clock.Now), audit.WithLogger(logger)); err != nil {
		t.Fatalf("audit.New: %v", err)
	}
	if env.reg, err = NewRegistry(env.db, vectorKey, env.audit, WithClock(env.clock.Now), WithLogger(logger)); err != nil {
		t.Fatalf("NewRegistry: %v", err)
	}
	env.reg.SetRetiredCheck(func(_ context.Context, serial string) (bool, error) {
		env.retiredMu.Lock()
		defer env.retiredMu.Unlock()
		return env.retired[serial], nil
	})
}

// reopen closes the store file and opens it again with a new Registry.
func (env *regEnv) reopen(t testing.TB) {
	t.Helper()
	if err := env.db.Close(); err != nil {
		t.Fatalf("close store: %v", err)
	}
	env.db = openTestDB(t, env.path)
	env.open(t)
}

// idevid returns the CertInfo of the n-th birth certificate of serial,
// obtained by station.
func idevid(serial, station string, n int) CertInfo {
	return CertInfo{
		Serial:        strconv.Itoa(1000000 + n),
		GatewaySerial: serial,
		Station:       station,
		NotAfter:      time.Date(2050, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(n) * time.Hour),
	}
}

func regReq(serial, model, station string, n int) RegisterRequest {
	return RegisterRequest{Serial: serial, Model: model, Station: station, Cert: idevid(serial, station, n), Source: "192.0.2.5:4711"}
}

func (env *regEnv) mustRegister(t testing.TB, req RegisterRequest) (Device, Credentials, bool) {
	t.Helper()
	dev, creds, created, err := env.reg.Register(context.Background(), req)
	if err != nil {
		t.Fatalf("Register(%s, cert %s): %v", req.Serial, req.Cert.Serial, err)
	}
	return dev, creds, created
}

// entries returns the audit log, oldest first.
func (env *regEnv) entries(t testing.TB) []audit.Entry {
	t.Helper()
	page, err := env.audit.List(context.Background(), audit.Query{Limit: audit.MaxLimit})
	if err != nil {
		t.Fatal(err)
	}
	out := make([]audit.Entry, 0, len(page.Entries))
	for i := len(page.Entries) - 1; i >= 0; i-- {
		e := page.Entries[i]
		e.Seq, e.Time = 0, time.Time{}
		out = append(out, e)
	}
	return out
}

func TestRegisterCreates(t *testing.T) {
	env := newRegEnv(t)
	dev, creds, created := env.mustRegister(t, regReq("GW-000042", "PumpCtl 3", "line1", 1))
	want := Device{
		Serial: "GW-000042", Model: "PumpCtl 3", Station: "line1",
		IDevIDSerial: "1000001", IDevIDNotAfter: idevid("", "", 1).NotAfter,
		RegisteredAt: env.clock.Now(), Generation: 1, State: StateUnclaimed,
	}
	if diff := cmp.Diff(want, dev); !created || diff != "" {
		t.Errorf("Register: created=%v; device (-want +got):\n%s", created, diff)
	}
	if hex := fmt.Sprintf("%x", creds.ClaimSecret); hex != codeVectors[0].secret || creds.LabelCode != codeVectors[0].label {
		t.Errorf("credentials = %s, %s; want the known vector %s, %s", hex, creds.LabelCode, codeVectors[0].secret, codeVectors[0].label)
	}
	got, err := env.reg.Device(context.Background(), "GW-000042")
	if diff := cmp.Diff(want, got); err != nil || diff != "" {
		t.Errorf("Device(GW-000042): %v; (-want +got):\n%s", err, diff)
	}
	if _, err := env.reg.Device(context.Background(), "GW-000043"); !errors.Is(err, ErrDeviceNotFound) {
		t.Errorf("Device(GW-000043) = %v; want ErrDeviceNotFound", err)
	}
	wantAudit := []audit.Entry{{
		Actor: "station:line1", Action: "register", Target: "GW-000042", Result: audit.ResultOK, Source: "192.0.2.5",
		Detail: map[string]string{"model": "PumpCtl 3", "idevid_serial": "1000001", "created": "true", "generation": "1"},
	}}
	if diff := cmp.Diff(wantAudit, env.entries(t)); diff != "" {
		t.Errorf("audit log (-want +got):\n%s", diff)
	}
	if logs := env.logs.String(); !strings.Contains(logs, "device registered") || strings.Contains(logs, creds.LabelCode) {
		t.Errorf("logs = %q; want the registration and no label code", logs)
	}
}

func TestRegisterIdempotent(t *testing.T) {
	env := newRegEnv(t)
	req := regReq("GW-1", "m1", "line1", 1)
	dev1, creds1, _ := env.mustRegister(t, req)
	env.clock.Advance(time.Hour)
	// A station finishing its batch after a crash: the same request.
	dev2, creds2, created := env.mustRegister(t, req)
	if created {
		t.Error("second Register with the same certificate: created = true; want false")
	}
	if diff := cmp.Diff(dev1, dev2); diff != "" {
		t.Errorf("second Register changed the device (-first +second):\n%s", diff)
	}
	if diff := cmp.Diff(creds1, creds2); diff != "" {
		t.Errorf("second Register changed the credentials (-first +second):\n%s", diff)
	}
	entries := env.entries(t)
	if len(entries) != 2 || entries[1].Result != audit.ResultOK || entries[1].Detail["created"] != "false" {
		t.Errorf("audit log = %+v; want a second ok entry with created=false", entries)
	}
	// The same certificate with another model is a different request.
	req.Model = "m2"
	if _, _, _, err := env.reg.Register(context.Background(), req); !errors.Is(err, ErrModelConflict) {
		t.Errorf("Register with another model = %v; want ErrModelConflict", err)
	}
}

func TestRegisterReissue(t *testing.T) {
	env := newRegEnv(t)
	ctx := context.Background()
	dev1, creds1, _ := env.mustRegister(t, regReq("GW-1", "m1", "line1", 1))

	// Another birth certificate without reissue: refused, nothing changes.
	if _, _, _, err := env.reg.Register(ctx, regReq("GW-1", "m1", "line1", 2)); !errors.Is(err, ErrRegisteredWithOtherCert) {
		t.Fatalf("Register with another certificate = %v; want ErrRegisteredWithOtherCert", err)
	}
	if got, _ := env.reg.Device(ctx, "GW-1"); got != dev1 {
		t.Errorf("a refused registration changed the device to %+v", got)
	}

	// A reissue, here by a repair station and as a new model revision.
	env.clock.Advance(time.Hour)
	req := regReq("GW-1", "m1b", "repair", 2)
	req.Reissue = true
	dev2, creds2, created := env.mustRegister(t, req)
	want := dev1
	want.Model, want.Station, want.IDevIDSerial, want.IDevIDNotAfter, want.Generation = "m1b", "repair", "1000002", req.Cert.NotAfter, 2
	if diff := cmp.Diff(want, dev2); created || diff != "" {
		t.Errorf("reissue: created=%v; device (-want +got):\n%s", created, diff)
	}
	if bytes.Equal(creds1.ClaimSecret, creds2.ClaimSecret) || creds1.LabelCode == creds2.LabelCode {
		t.Error("reissue kept the credentials; want new ones")
	}
	old, _ := ParseCode(creds1.LabelCode)
	if VerifyLabelCode(vectorKey, "GW-1", dev2.Generation, old) {
		t.Error("the old label code verifies after a reissue; want it retired")
	}

	// Repeating the reissue (a crash after it) does not bump again, with
	// or without the flag.
	for _, reissue := range []bool{true, false} {
		req.Reissue = reissue
		dev3, creds3, created := env.mustRegister(t, req)
		if created || dev3 != dev2 || creds3.LabelCode != creds2.LabelCode {
			t.Errorf("repeated reissue (flag %v): created=%v generation %d; want the reissued device unchanged", reissue, created, dev3.Generation)
		}
	}
	// The old certificate is now the other one.
	if _, _, _, err := env.reg.Register(ctx, regReq("GW-1", "m1", "line1", 1)); !errors.Is(err, ErrRegisteredWithOtherCert) {
		t.Errorf("Register with the replaced certificate = %v; want ErrRegisteredWithOtherCert", err)
	}
	// A reissue of a gateway never registered simply registers it.
	req = regReq("GW-2", "m1", "line1", 5)
	req.Reissue = true
	if dev, _, created := env.mustRegister(t, req); !created || dev.Generation != 1 {
		t.Errorf("reissue of a new gateway: created=%v generation %d; want created, generation 1", created, dev.Generation)
	}
	var details []string
	for _, e := range env.entries(t) {
		details = append(details, e.Result+" "+e.Detail["reissue"]+" "+e.Detail["generation"]+" "+e.Detail["reason"])
	}
	wantDetails := []string{
		"ok  1 ", "refused   registered with another certificate", "ok true 2 ", "ok true 2 ", "ok  2 ",
		"refused   registered with another certificate", "ok true 1 ",
	}
	if diff := cmp.Diff(wantDetails, details); diff != "" {
		t.Errorf("audit results, reissue, generation, reason (-want +got):\n%s", diff)
	}
}

func TestRegisterRefusals(t *testing.T) {
	env := newRegEnv(t)
	ctx := context.Background()
	env.mustRegister(t, regReq("GW-1", "m1", "line1", 1))
	mod := func(f func(*RegisterRequest)) RegisterRequest {
		r := regReq("GW-2", "m1", "line1", 2)
		f(&r)
		return r
	}
	for _, tc := range []struct {
		name   string
		req    RegisterRequest
		want   error
		reason string
	}{
		{"empty serial", mod(func(r *RegisterRequest) { r.Serial, r.Cert.GatewaySerial = "", "" }), ErrInvalidSerial, "invalid serial"},
		{"serial with a slash", mod(func(r *RegisterRequest) { r.Serial, r.Cert.GatewaySerial = "GW/2", "GW/2" }), ErrInvalidSerial, "invalid serial"},
		{"serial starting with a dot", mod(func(r *RegisterRequest) { r.Serial, r.Cert.GatewaySerial = ".GW", ".GW" }), ErrInvalidSerial, "invalid serial"},
		{"serial with NUL", mod(func(r *RegisterRequest) { r.Serial, r.Cert.GatewaySerial = "GW\x002", "GW\x002" }), ErrInvalidSerial, "invalid serial"},
		{"serial of 65", mod(func(r *RegisterRequest) { r.Serial = strings.Repeat("A", 65); r.Cert.GatewaySerial = r.Serial }), ErrInvalidSerial, "invalid serial"},
		{"empty model", mod(func(r *RegisterRequest) { r.Model = "" }), ErrInvalidModel, "invalid model"},
		{"model of 65", mod(func(r *RegisterRequest) { r.Model = strings.Repeat("é", 65) }), ErrInvalidModel, "invalid model"},
		{"model with a newline", mod(func(r *RegisterRequest) { r.Model = "m\n1" }), ErrInvalidModel, "invalid model"},
		{"model with an escape", mod(func(r *RegisterRequest) { r.Model = "\x1b[2J" }), ErrInvalidModel, "invalid model"},
		{"model not UTF-8", mod(func(r *RegisterRequest) { r.Model = "m\xff" }), ErrInvalidModel, "invalid model"},
		{"certificate of another gateway", mod(func(r *RegisterRequest) { r.Cert.GatewaySerial = "GW-3" }), ErrCertificateMismatch, "certificate names another gateway"},
		{"gateway of another station", mod(func(r *RegisterRequest) { r.Cert.Station = "line2" }), ErrOtherStation, "certificate issued to another station"},
		{"registered with another certificate", regReq("GW-1", "m1", "line1", 9), ErrRegisteredWithOtherCert, "registered with another certificate"},
		{"registered as another model", regReq("GW-1", "m2", "line1", 1), ErrModelConflict, "registered as another model"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(env.entries(t))
			dev, creds, created, err := env.reg.Register(ctx, tc.req)
			if !errors.Is(err, tc.want) || dev != (Device{}) || creds.ClaimSecret != nil || created {
				t.Fatalf("Register = %+v, created %v, %v; want %v and nothing else", dev, created, err, tc.want)
			}
			entries := env.entries(t)
			if len(entries) != before+1 {
				t.Fatalf("audit log grew by %d entries; want 1", len(entries)-before)
			}
			e := entries[len(entries)-1]
			if e.Result != audit.ResultRefused || e.Detail["reason"] != tc.reason || e.Actor != "station:line1" {
				t.Errorf("audit entry = %+v; want refused by station:line1 with reason %q", e, tc.reason)
			}
		})
	}
	if page, _ := env.reg.Devices(ctx, DeviceQuery{}); len(page.Devices) != 1 {
		t.Errorf("after refusals the registry holds %d devices; want 1", len(page.Devices))
	}

	// What the server supplies must be complete: a gap is a failure, not a
	// refusal.
	for name, req := range map[string]RegisterRequest{
		"no station":            mod(func(r *RegisterRequest) { r.Station = "" }),
		"hex certificate":       mod(func(r *RegisterRequest) { r.Cert.Serial = "0x10" }),
		"no certificate":        mod(func(r *RegisterRequest) { r.Cert = CertInfo{GatewaySerial: "GW-2", Station: "line1"} }),
		"no certificate expiry": mod(func(r *RegisterRequest) { r.Cert.NotAfter = time.Time{} }),
	} {
		_, _, _, err := env.reg.Register(ctx, req)
		if err == nil || isRegisterRefusal(err) {
			t.Errorf("Register with %s = %v; want an error that is no refusal", name, err)
		}
		entries := env.entries(t)
		if e := entries[len(entries)-1]; e.Result != audit.ResultFailed {
			t.Errorf("Register with %s audited %+v; want result failed", name, e)
		}
	}
}

func TestRegisterDurable(t *testing.T) {
	env := newRegEnv(t)
	dev, creds, _ := env.mustRegister(t, regReq("GW-1", "m1", "line1", 1))
	env.reopen(t)
	got, err := env.reg.Device(context.Background(), "GW-1")
	if diff := cmp.Diff(dev, got); err != nil || diff != "" {
		t.Errorf("Device after reopening: %v; (-before +after):\n%s", err, diff)
	}
	// The credentials are derived again, the same.
	_, creds2, created := env.mustRegister(t, regReq("GW-1", "m1", "line1", 1))
	if created || !bytes.Equal(creds.ClaimSecret, creds2.ClaimSecret) || creds.LabelCode != creds2.LabelCode {
		t.Errorf("Register after reopening: created=%v, credentials changed=%v; want the same device and credentials",
			created, creds.LabelCode != creds2.LabelCode)
	}
	if n := len(env.entries(t)); n != 2 {
		t.Errorf("audit log after reopening holds %d entries; want 2", n)
	}
}

func TestRegisterConcurrent(t *testing.T) {
	env := newRegEnv(t)
	ctx := context.Background()
	const n = 200
	var wg sync.WaitGroup
	errs := make(chan error, 3*n)
	for i := range n {
		wg.Go(func() {
			serial := fmt.Sprintf("GW-%04d", i)
			if _, _, created, err := env.reg.Register(ctx, regReq(serial, "m1", "line1", i)); err != nil || !created {
				errs <- fmt.Errorf("Register(%s) = created %v, %v; want created", serial, created, err)
			}
		})
	}
	// Many requests for one serial with one certificate: exactly one
	// creates it, all get the same credentials.
	var createdSame atomic.Int32
	labels := make(chan string, n)
	for range n {
		wg.Go(func() {
			_, creds, created, err := env.reg.Register(ctx, regReq("GW-SAME", "m1", "line1", 1))
			if err != nil {
				errs <- fmt.Errorf("Register(GW-SAME): %v", err)
				return
			}
			if created {
				createdSame.Add(1)
			}
			labels <- creds.LabelCode
		})
	}
	// And with a different certificate each: exactly one wins.
	var won atomic.Int32
	for i := range n {
		wg.Go(func() {
			_, _, created, err := env.reg.Register(ctx, regReq("GW-RACE", "m1", "line1", i))
			switch {
			case err == nil && created:
				won.Add(1)
			case errors.Is(err, ErrRegisteredWithOtherCert):
			case err == nil:
				// The winner's own certificate cannot come twice.
				errs <- fmt.Errorf("Register(GW-RACE, cert %d) = not created, no error", i)
			default:
				errs <- fmt.Errorf("Register(GW-RACE, cert %d): %v", i, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	close(labels)
	for err := range errs {
		t.Error(err)
	}
	if c := createdSame.Load(); c != 1 {
		t.Errorf("%d concurrent registrations of GW-SAME created it %d times; want once", n, c)
	}
	want := LabelCode(vectorKey, "GW-SAME", 1)
	for l := range labels {
		if l != want {
			t.Fatalf("a registration of GW-SAME got label %s; want %s", l, want)
		}
	}
	if w := won.Load(); w != 1 {
		t.Errorf("%d registrations of GW-RACE with different certificates: %d succeeded; want 1", n, w)
	}
	page, err := env.reg.Devices(ctx, DeviceQuery{Limit: MaxDeviceLimit})
	if err != nil || len(page.Devices) != n+2 || page.Next != "" {
		t.Errorf("Devices = %d devices, next %q, %v; want %d", len(page.Devices), page.Next, err, n+2)
	}
	if entries, _ := env.audit.Len(ctx); entries != 3*n {
		t.Errorf("audit log holds %d entries; want %d, one per registration", entries, 3*n)
	}
}

// TestCredentialsNeverStored registers gateways, reissues one, and then
// searches every key and value of every bucket, and the file itself, for
// their claim secrets and label codes.
func TestCredentialsNeverStored(t *testing.T) {
	env := newRegEnv(t)
	var secrets [][]byte
	for i := range 20 {
		_, creds, _ := env.mustRegister(t, regReq(fmt.Sprintf("GW-%02d", i), "m1", "line1", i))
		secrets = append(secrets, creds.ClaimSecret, []byte(creds.LabelCode))
	}
	req := regReq("GW-00", "m1", "line1", 100)
	req.Reissue = true
	_, creds, _ := env.mustRegister(t, req)
	secrets = append(secrets, creds.ClaimSecret, []byte(creds.LabelCode))
	var needles [][]byte
	for _, s := range secrets {
		needles = append(needles, s,
			[]byte(base64.RawURLEncoding.EncodeToString(s)), []byte(base64.StdEncoding.EncodeToString(s)),
			[]byte(fmt.Sprintf("%x", s)), bytes.ReplaceAll(s, []byte("-"), nil))
	}
	needles = append(needles, vectorKey)

	var scanned int
	err := env.db.View(func(tx *bolt.Tx) error {
		var walk func(path string, b *bolt.Bucket) error
		walk = func(path string, b *bolt.Bucket) error {
			return b.ForEach(func(k, v []byte) error {
				scanned++
				if v == nil {
					return walk(path+"/"+string(k), b.Bucket(k))
				}
				for _, n := range needles {
					if bytes.Contains(k, n) || bytes.Contains(v, n) {
						t.Errorf("bucket %s key %q holds a credential (%q)", path, k, n)
					}
				}
				return nil
			})
		}
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error { return walk(string(name), b) })
	})
	if err != nil {
		t.Fatal(err)
	}
	if scanned < 20+21 { // 20 devices, 21 audit entries
		t.Errorf("scanned %d keys; want at least the devices and their audit entries", scanned)
	}
	if err := env.db.Close(); err != nil {
		t.Fatal(err)
	}
	file, err := os.ReadFile(env.path)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range needles {
		if bytes.Contains(file, n) {
			t.Errorf("the store file holds a credential (%q)", n)
		}
	}
	if !bytes.Contains(file, []byte("GW-00")) {
		t.Error("the store file does not hold the serial GW-00 either: the search cannot find anything")
	}
}

func TestDevicesPaging(t *testing.T) {
	env := newRegEnv(t)
	ctx := context.Background()
	var all []string
	for i := range 25 {
		model := "alpha"
		if i%3 == 0 {
			model = "beta"
		}
		serial := fmt.Sprintf("GW-%03d", 24-i) // registered out of order
		env.mustRegister(t, regReq(serial, model, "line1", i))
		all = append([]string{serial}, all...)
	}
	serials := func(p DevicePage) []string {
		var s []string
		for _, d := range p.Devices {
			s = append(s, d.Serial)
		}
		return s
	}
	var got []string
	q := DeviceQuery{Limit: 10}
	pages := 0
	for {
		p, err := env.reg.Devices(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		got = append(got, serials(p)...)
		if p.Next == "" {
			break
		}
		if p.Next != got[len(got)-1] {
			t.Errorf("page %d: next %q; want its last serial %q", pages, p.Next, got[len(got)-1])
		}
		q.After = p.Next
	}
	if diff := cmp.Diff(all, got); pages != 3 || diff != "" {
		t.Errorf("paging by 10: %d pages; serials (-want +got):\n%s", pages, diff)
	}
	// A page that ends exactly at the last device says there is no more.
	if p, _ := env.reg.Devices(ctx, DeviceQuery{After: "GW-019"}); len(p.Devices) != 5 || p.Next != "" {
		t.Errorf("Devices(after GW-019) = %v, next %q; want the last 5, no next", serials(p), p.Next)
	}
	if p, _ := env.reg.Devices(ctx, DeviceQuery{After: "GW-019", Limit: 5}); len(p.Devices) != 5 || p.Next != "" {
		t.Errorf("Devices(after GW-019, limit 5) = %v, next %q; want the last 5, no next", serials(p), p.Next)
	}
	// After need not be a registered serial.
	if p, _ := env.reg.Devices(ctx, DeviceQuery{After: "GW-0195", Limit: 2}); cmp.Diff([]string{"GW-020", "GW-021"}, serials(p)) != "" || p.Next != "GW-021" {
		t.Errorf("Devices(after GW-0195, limit 2) = %v, next %q; want GW-020 GW-021, next GW-021", serials(p), p.Next)
	}
	beta, _ := env.reg.Devices(ctx, DeviceQuery{Model: "beta"})
	for _, d := range beta.Devices {
		if d.Model != "beta" {
			t.Errorf("Devices(model beta) holds %s of model %s", d.Serial, d.Model)
		}
	}
	if len(beta.Devices) != 9 {
		t.Errorf("Devices(model beta) = %d devices; want 9", len(beta.Devices))
	}
	if p, _ := env.reg.Devices(ctx, DeviceQuery{State: StateUnclaimed, Model: "alpha"}); len(p.Devices) != 16 {
		t.Errorf("Devices(unclaimed alpha) = %d devices; want 16", len(p.Devices))
	}
	if p, _ := env.reg.Devices(ctx, DeviceQuery{Model: "gamma"}); p.Devices == nil || len(p.Devices) != 0 || p.Next != "" {
		t.Errorf("Devices(model gamma) = %#v; want an empty, non-nil page", p)
	}
	// The scan bound cuts a filtered page short, with a next to go on.
	recs, next, err := env.reg.store.devices(ctx, DeviceQuery{Model: "beta", Limit: 100}, 4)
	if err != nil || len(recs) != 2 || next != "GW-003" {
		t.Errorf("devices(model beta, scan 4) = %d records, next %q, %v; want GW-000, GW-003 and next GW-003", len(recs), next, err)
	}
	for _, q := range []DeviceQuery{
		{Limit: -1}, {Limit: MaxDeviceLimit + 1}, {State: "claimed-ish"}, {Model: strings.Repeat("m", 257)},
		{After: strings.Repeat("a", 257)},
	} {
		if _, err := env.reg.Devices(ctx, q); !errors.Is(err, ErrInvalidDeviceQuery) {
			t.Errorf("Devices(%+v) = %v; want ErrInvalidDeviceQuery", q, err)
		}
	}
}

func TestNewRegistryRefuses(t *testing.T) {
	env := newRegEnv(t)
	if _, err := NewRegistry(env.db, vectorKey[:31], env.audit); err == nil {
		t.Error("NewRegistry with a 31-byte key succeeded; want an error")
	}
	if _, err := NewRegistry(env.db, vectorKey, nil); err == nil {
		t.Error("NewRegistry without an audit log succeeded; want an error")
	}
	// The registry keeps its own copy of the key.
	key := bytes.Clone(vectorKey)
	reg, err := NewRegistry(env.db, key, env.audit)
	if err != nil {
		t.Fatal(err)
	}
	key[0] ^= 0xff
	if got := reg.credentials("GW-000042", 1).LabelCode; got != codeVectors[0].label {
		t.Errorf("credentials after the caller changed its key = %s; want %s", got, codeVectors[0].label)
	}
}

func TestValidateSerialMatchesCA(t *testing.T) {
	// The cases of ca's TestValidateSerial: the rules must agree.
	for _, s := range []string{"GW-000001", "a", "A.b_c-9", strings.Repeat("x", 64)} {
		if err := validateSerial(s); err != nil {
			t.Errorf("validateSerial(%q) = %v; want nil", s, err)
		}
	}
	for _, s := range []string{"", "-GW", ".GW", "_GW", "GW 1", "GW/1", "GW:1", "Gé", strings.Repeat("x", 65), "GW\x00"} {
		if err := validateSerial(s); !errors.Is(err, ErrInvalidSerial) {
			t.Errorf("validateSerial(%q) = %v; want ErrInvalidSerial", s, err)
		}
	}
}
