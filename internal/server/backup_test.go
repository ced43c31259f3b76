package server

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/gwpki/gwpki/internal/audit"
)

// TestBackup takes a hot backup of a running server: the archive's gwpki.db
// is a sound bbolt file holding the data written before, telemetry.db
// opens, the plain files and certificates are there, secrets/ is not; only
// an admin may take one, and it is audited.
func TestBackup(t *testing.T) {
	ts := startServer(t, nil)
	admin := ts.login(t)
	if code, body := ts.apiPost(t, admin, "/v1/users", `{"username":"olga","org":"acme","role":"operator","password":"olga password"}`); code != http.StatusCreated {
		t.Fatalf("create olga: %d %s", code, body)
	}

	resp := ts.apiGet(t, admin, "/v1/backup")
	if resp.status != http.StatusOK || resp.header.Get("Content-Type") != "application/gzip" {
		t.Fatalf("GET /v1/backup as admin = %d %q (%s); want 200 application/gzip", resp.status, resp.header.Get("Content-Type"), resp.body)
	}
	files := untar(t, resp.body)
	for _, name := range []string{"gwpki.db", "telemetry.db", "config.json", "stations.json", "certs/root_ca.crt", "certs/intermediate_ca.crt"} {
		if _, ok := files[name]; !ok {
			t.Errorf("backup has no %s", name)
		}
	}
	for name := range files {
		if strings.HasPrefix(name, "secrets") || strings.Contains(name, "key") || strings.Contains(name, "password") {
			t.Errorf("backup holds %s; want no secrets", name)
		}
	}
	if want, _ := os.ReadFile(filepath.Join(ts.dir, "config.json")); !bytes.Equal(files["config.json"], want) {
		t.Errorf("backup's config.json differs from the data directory's")
	}

	db := openCopy(t, "gwpki.db", files["gwpki.db"])
	err := db.View(func(tx *bolt.Tx) error {
		var errs []error
		for err := range tx.Check() {
			errs = append(errs, err)
		}
		if len(errs) > 0 {
			t.Errorf("gwpki.db from the backup fails tx.Check: %v", errs)
		}
		users := tx.Bucket([]byte("accounts/users"))
		if users == nil {
			t.Fatal("gwpki.db from the backup has no accounts/users bucket")
		}
		for _, u := range []string{AdminUser, "olga"} {
			if users.Get([]byte(u)) == nil {
				t.Errorf("gwpki.db from the backup has no user %s", u)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	tdb := openCopy(t, "telemetry.db", files["telemetry.db"])
	if err := tdb.View(func(tx *bolt.Tx) error {
		if tx.Bucket([]byte("meta")) == nil {
			t.Error("telemetry.db from the backup has no meta bucket")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	// No temporary snapshot is left in the data directory.
	if left, _ := filepath.Glob(filepath.Join(ts.dir, ".backup-*")); len(left) != 0 {
		t.Errorf("left in the data directory: %v", left)
	}

	var page audit.Page
	ts.apiGetJSON(t, admin, "/v1/audit?action=backup", &page)
	if len(page.Entries) != 1 || page.Entries[0].Actor != "user:admin" || page.Entries[0].Result != audit.ResultOK || page.Entries[0].Detail["bytes"] == "" {
		t.Errorf("audit entries of action backup = %+v; want one ok entry by user:admin with bytes", page.Entries)
	}

	olga := ts.loginAs(t, "olga", "olga password")
	if resp := ts.apiGet(t, olga, "/v1/backup"); resp.status != http.StatusForbidden {
		t.Errorf("GET /v1/backup as operator = %d; want 403", resp.status)
	}
	if resp := ts.apiGet(t, "", "/v1/backup"); resp.status != http.StatusUnauthorized {
		t.Errorf("GET /v1/backup without a session = %d; want 401", resp.status)
	}
}

// TestBackupUnderWrites takes backups while users are being created: each
// gwpki.db copy is consistent.
func TestBackupUnderWrites(t *testing.T) {
	ts := startServer(t, nil)
	admin := ts.login(t)
	stop := make(chan struct{})
	done := make(chan int)
	go func() {
		n := 0
		for {
			select {
			case <-stop:
				done <- n
				return
			default:
			}
			body := `{"username":"u` + strconv.Itoa(n) + `","org":"acme","role":"installer","password":"a long password"}`
			if code, _ := ts.apiPost(t, admin, "/v1/users", body); code == http.StatusCreated {
				n++
			}
		}
	}()
	for i := range 3 {
		resp := ts.apiGet(t, admin, "/v1/backup")
		if resp.status != http.StatusOK {
			t.Fatalf("backup %d: status %d", i, resp.status)
		}
		db := openCopy(t, "gwpki.db", untar(t, resp.body)["gwpki.db"])
		if err := db.View(func(tx *bolt.Tx) error {
			for err := range tx.Check() {
				t.Errorf("backup %d: %v", i, err)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	if n := <-done; n == 0 {
		t.Error("no user was created while the backups ran")
	}
}

type getAnswer struct {
	status int
	header http.Header
	body   []byte
}

func (ts *testServer) apiGet(t *testing.T, token, path string) getAnswer {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, ts.ready.APIURL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := ts.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: read answer: %v", path, err)
	}
	return getAnswer{resp.StatusCode, resp.Header, b}
}

// untar reads a whole tar.gz, checking the gzip checksum.
func untar(t *testing.T, b []byte) map[string][]byte {
	t.Helper()
	gz, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	files := map[string][]byte{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		files[h.Name] = data
	}
	if _, err := io.Copy(io.Discard, gz); err != nil {
		t.Fatalf("gzip stream: %v", err)
	}
	return files
}

// openCopy writes data to a file and opens it read-only with bbolt.
func openCopy(t *testing.T, name string, data []byte) *bolt.DB {
	t.Helper()
	if len(data) == 0 {
		t.Fatalf("%s: empty", name)
	}
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		t.Fatalf("open %s from the backup: %v", name, err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}
