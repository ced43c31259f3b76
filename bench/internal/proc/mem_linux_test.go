package proc

import (
	"os"
	"testing"
)

func TestProcessMemoryOfThisProcess(t *testing.T) {
	m, err := ProcessMemory(os.Getpid())
	if err != nil || m.RSS <= 0 || m.Peak < m.RSS {
		t.Fatalf("ProcessMemory = %+v, %v; want RSS > 0 and a peak at least as high", m, err)
	}
	r, err := ProcessRSSParts(os.Getpid())
	if err != nil || r.Anon <= 0 || r.File <= 0 {
		t.Fatalf("ProcessRSSParts = %+v, %v; want anonymous and file-backed pages", r, err)
	}
	if _, err := ProcessMemory(-1); err == nil {
		t.Fatal("ProcessMemory(-1) did not fail")
	}
}
