package claim

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
)

func TestLoadOrCreateClaimKey(t *testing.T) {
	// A secrets directory that does not exist yet is created, private.
	dir := filepath.Join(t.TempDir(), "secrets")
	path := filepath.Join(dir, "claim_key")
	key, err := LoadOrCreateClaimKey(path)
	if err != nil {
		t.Fatalf("LoadOrCreateClaimKey(new): %v", err)
	}
	if len(key) != ClaimKeySize || bytes.Equal(key, make([]byte, ClaimKeySize)) {
		t.Fatalf("new key = %x; want %d random bytes", key, ClaimKeySize)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "windows" {
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("key file mode %v; want 0600", fi.Mode().Perm())
		}
		if di, _ := os.Stat(dir); di.Mode().Perm() != 0o700 {
			t.Errorf("secrets directory mode %v; want 0700", di.Mode().Perm())
		}
	}
	onDisk, _ := os.ReadFile(path)
	if !bytes.Equal(onDisk, key) {
		t.Errorf("file holds %x; want the key returned, %x", onDisk, key)
	}
	again, err := LoadOrCreateClaimKey(path)
	if err != nil || !bytes.Equal(again, key) {
		t.Errorf("LoadOrCreateClaimKey(existing) = %x, %v; want the same key %x", again, err, key)
	}
	// No temporary files are left behind.
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("secrets directory holds %v; want only claim_key", names)
	}
}

func TestLoadOrCreateClaimKeyConcurrent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "claim_key")
	const n = 16
	keys := make([][]byte, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { keys[i], errs[i] = LoadOrCreateClaimKey(path) })
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil || !bytes.Equal(keys[i], keys[0]) {
			t.Errorf("caller %d got %x, %v; want the one key %x", i, keys[i], errs[i], keys[0])
		}
	}
}

func TestLoadOrCreateClaimKeyRefuses(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, data []byte, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil { // past the umask
			t.Fatal(err)
		}
		return p
	}
	key := bytes.Repeat([]byte{7}, ClaimKeySize)
	tests := []struct {
		name, path, want string
	}{
		{"empty", write("empty", nil, 0o600), "holds 0 bytes; want 32"},
		{"short", write("short", key[:31], 0o600), "holds 31 bytes; want 32"},
		{"long", write("long", append(key, '\n'), 0o600), "holds 33 bytes; want 32"},
		{"a directory", func() string { p := filepath.Join(dir, "d"); os.Mkdir(p, 0o700); return p }(), "not a regular file"},
	}
	if runtime.GOOS != "windows" {
		tests = append(tests,
			struct{ name, path, want string }{"group-readable", write("group", key, 0o640), "accessible by other users"},
			struct{ name, path, want string }{"world-readable", write("world", key, 0o604), "accessible by other users"},
		)
	}
	for _, tc := range tests {
		got, err := LoadOrCreateClaimKey(tc.path)
		if err == nil || !strings.Contains(err.Error(), tc.want) || got != nil {
			t.Errorf("LoadOrCreateClaimKey(%s) = %x, %v; want an error saying %q", tc.name, got, err, tc.want)
		}
		// Refused, not replaced.
		if fi, err := os.Stat(tc.path); err == nil && fi.Mode().IsRegular() {
			if b, _ := os.ReadFile(tc.path); len(b) == ClaimKeySize && !bytes.Equal(b, key) {
				t.Errorf("LoadOrCreateClaimKey(%s) replaced the file", tc.name)
			}
		}
	}
	if runtime.GOOS != "windows" {
		link := filepath.Join(dir, "dangling")
		if err := os.Symlink(filepath.Join(dir, "nowhere"), link); err != nil {
			t.Fatal(err)
		}
		if got, err := LoadOrCreateClaimKey(link); err == nil {
			t.Errorf("LoadOrCreateClaimKey(dangling link) = %x; want an error", got)
		}
	}
}
