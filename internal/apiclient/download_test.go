package apiclient

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/pem"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/go-chi/chi/v5"

	"github.com/gwpki/gwpki/claim"
	"github.com/gwpki/gwpki/internal/store/storetest"
)

func TestDownload(t *testing.T) {
	configDir(t)
	a, err := claim.NewAccounts(storetest.OpenTemp(t), claim.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, u := range []claim.NewUser{
		{Username: "ada", Org: "hq", Role: claim.RoleAdmin, Password: "ada password"},
		{Username: "ivy", Org: "acme", Role: claim.RoleInstaller, Password: "ivy password"},
	} {
		if _, err := a.CreateUser(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	// More than one copy buffer, and pseudo-random so that nothing
	// compresses it along the way.
	blob := make([]byte, 5<<20+17)
	for i := range blob {
		blob[i] = byte(i*7919 + i>>8)
	}
	r := chi.NewRouter()
	a.Routes(r)
	r.With(a.RequireRole(claim.RoleAdmin)).Get("/v1/blob", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		for off := 0; off < len(blob); off += 64 << 10 {
			w.Write(blob[off:min(off+64<<10, len(blob))])
			w.(http.Flusher).Flush()
		}
	})
	srv := httptest.NewTLSServer(r)
	t.Cleanup(srv.Close)
	root := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})

	admin, err := Login(ctx, srv.URL, root, "ada", "ada password")
	if err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	n, err := admin.Download(ctx, "/v1/blob", &got)
	if err != nil {
		t.Fatalf("Download as admin: %v", err)
	}
	if n != int64(len(blob)) || sha256.Sum256(got.Bytes()) != sha256.Sum256(blob) {
		t.Errorf("Download as admin: %d bytes (%d written), not the %d sent", n, got.Len(), len(blob))
	}

	installer, err := Login(ctx, srv.URL, root, "ivy", "ivy password")
	if err != nil {
		t.Fatal(err)
	}
	got.Reset()
	n, err = installer.Download(ctx, "/v1/blob", &got)
	var apiErr *Error
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusForbidden {
		t.Fatalf("Download as installer: err %v; want *Error with status 403", err)
	}
	if apiErr.Message == "" || n != 0 || got.Len() != 0 {
		t.Errorf("Download as installer: message %q, %d bytes, %d written; want a message and nothing written", apiErr.Message, n, got.Len())
	}

	got.Reset()
	if _, err := admin.Download(ctx, "/v1/nothing", &got); !errors.As(err, &apiErr) || apiErr.Status != http.StatusNotFound || got.Len() != 0 {
		t.Errorf("Download of a missing path: err %v, %d written; want *Error 404, nothing written", err, got.Len())
	}
}
