package provisioning

import (
	"os"

	"golang.org/x/sys/unix"
)

// syncFS makes everything written to the file system holding path durable,
// in one call: the batch's group commit.
func syncFS(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return unix.Syncfs(int(f.Fd()))
}
