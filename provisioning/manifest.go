package provisioning

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// ManifestEntry is one line of OUT/manifest.jsonl (and a row of
// manifest.csv), for the factory's MES.
type ManifestEntry struct {
	Serial       string    `json:"serial"`
	IDevIDSerial string    `json:"idevid_serial"`
	Fingerprint  string    `json:"idevid_sha256"`
	NotAfter     time.Time `json:"idevid_not_after"`
	Model        string    `json:"model"`
}

// writeManifest writes OUT/manifest.jsonl and OUT/manifest.csv from the
// bundles of the batch's serials that are finished, in the batch's order.
// They are rewritten whole at the end of every run, so a crash never leaves
// them out of step with the bundles.
func writeManifest(out string, serials []string) error {
	var jl, cs bytes.Buffer
	w := csv.NewWriter(&cs)
	_ = w.Write([]string{"serial", "idevid_serial", "idevid_sha256", "idevid_not_after", "model"})
	enc := json.NewEncoder(&jl)
	for _, s := range serials {
		data, err := os.ReadFile(filepath.Join(out, s, GatewayFile))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("manifest: %w", err)
		}
		var b Bundle
		if err := json.Unmarshal(data, &b); err != nil {
			return fmt.Errorf("manifest: %s: %w", s, err)
		}
		e := ManifestEntry{Serial: b.Serial, IDevIDSerial: b.IDevIDSerial, Fingerprint: b.Fingerprint, NotAfter: b.NotAfter, Model: b.Model}
		if err := enc.Encode(e); err != nil {
			return err
		}
		_ = w.Write([]string{e.Serial, e.IDevIDSerial, e.Fingerprint, e.NotAfter.Format(time.RFC3339), e.Model})
	}
	w.Flush()
	for name, data := range map[string][]byte{"manifest.jsonl": jl.Bytes(), "manifest.csv": cs.Bytes()} {
		if err := replaceFile(filepath.Join(out, name), data); err != nil {
			return fmt.Errorf("manifest: %w", err)
		}
	}
	return nil
}

// replaceFile writes data to path through a durable temporary file and a
// rename, so readers see the old file or the new one.
func replaceFile(path string, data []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err = errors.Join(err, f.Sync(), f.Close()); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	return syncPath(filepath.Dir(path))
}
