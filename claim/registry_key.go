package claim

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
)

// ClaimKeySize is the size of the server's claim key in bytes.
const ClaimKeySize = 32

// LoadOrCreateClaimKey returns the server's claim key kept in the file at
// path (gwpki serve passes secrets/claim_key of the data directory),
// creating it with 32 random bytes and mode 0600 when the file does not
// exist. Every gateway's claim secret and label code are derived from this
// key: losing it makes every printed label useless, and anyone who reads it
// can compute every gateway's codes. Back it up with the CA keys.
//
// It refuses a file that is not a regular file of exactly 32 bytes, or that
// group or others may access (on systems with Unix permissions), rather
// than use or replace it. A missing parent directory is created with mode
// 0700. A new key is written to a temporary file, synced and linked into
// place, so a crash never leaves half a key and two processes racing to
// create it end up with the same one.
func LoadOrCreateClaimKey(path string) ([]byte, error) {
	key, err := readClaimKey(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return key, err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create claim key: %w", err)
	}
	key = make([]byte, ClaimKeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("create claim key: %w", err)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return nil, fmt.Errorf("create claim key: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	err = f.Chmod(0o600)
	if err == nil {
		_, err = f.Write(key)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("create claim key: %w", err)
	}
	// Link, unlike rename, never replaces a key another process has just
	// created: the loser reads the winner's.
	if err := os.Link(tmp, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			key, err := readClaimKey(path)
			if errors.Is(err, fs.ErrNotExist) {
				// A dangling symbolic link, say.
				err = fmt.Errorf("read claim key: %w", err)
			}
			return key, err
		}
		return nil, fmt.Errorf("create claim key: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return key, nil
}

// readClaimKey reads and checks an existing key file; a missing file is an
// error wrapping fs.ErrNotExist.
func readClaimKey(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		return nil, fmt.Errorf("read claim key: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("read claim key: %w", err)
	}
	switch {
	case !fi.Mode().IsRegular():
		return nil, fmt.Errorf("read claim key: %s is not a regular file", path)
	case runtime.GOOS != "windows" && fi.Mode().Perm()&0o077 != 0:
		return nil, fmt.Errorf("read claim key: %s is accessible by other users (mode %v); run chmod 600 on it", path, fi.Mode().Perm())
	case fi.Size() != ClaimKeySize:
		return nil, fmt.Errorf("read claim key: %s holds %d bytes; want %d (restore it from a backup: a new key would change every label code)",
			path, fi.Size(), ClaimKeySize)
	}
	key := make([]byte, ClaimKeySize)
	if _, err := io.ReadFull(f, key); err != nil {
		return nil, fmt.Errorf("read claim key: %w", err)
	}
	// Nothing more: a file that grew between Stat and here is refused.
	if n, _ := f.Read(make([]byte, 1)); n != 0 {
		return nil, fmt.Errorf("read claim key: %s holds more than %d bytes", path, ClaimKeySize)
	}
	return key, nil
}
