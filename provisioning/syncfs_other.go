//go:build !linux

package provisioning

import (
	"io/fs"
	"path/filepath"
)

// syncFS makes every file under path durable, one by one: without Linux's
// syncfs there is no cheaper way.
func syncFS(path string) error {
	return filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return syncPath(p)
	})
}
