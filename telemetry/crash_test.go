package telemetry

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// crashHelperEnv names the file TestCrashHelper appends to when this test
// binary is re-executed as the crash test's victim.
const crashHelperEnv = "GWPKI_TELEMETRY_CRASH_FILE"

const crashGateways = 8

// TestCrashHelper is not a test on its own: run by TestCrashKeepsAcknowledged
// with crashHelperEnv set, it appends from many goroutines until it is
// killed, printing "ack <id>" for every Append that returned nil, the way the
// broker sends a PUBACK.
func TestCrashHelper(t *testing.T) {
	path := os.Getenv(crashHelperEnv)
	if path == "" {
		t.Skip("helper process for TestCrashKeepsAcknowledged")
	}
	// A one-second span, so partitions are created during the burst.
	s, err := Open(path, Options{Partition: time.Second})
	if err != nil {
		fmt.Fprintln(os.Stderr, "open:", err)
		os.Exit(2)
	}
	var out sync.Mutex
	const writers = 32
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			gw := fmt.Sprintf("CRASH-%d", w%crashGateways)
			for i := 0; ; i++ {
				id := fmt.Sprintf("%d/%d-%d", os.Getpid(), w, i) // unique across rounds
				m := Message{Gateway: gw, Topic: "gw/" + gw + "/telemetry", Payload: []byte(`{"id":"` + id + `"}`)}
				if err := s.Append(context.Background(), m); err != nil {
					fmt.Fprintln(os.Stderr, "append:", err)
					os.Exit(2)
				}
				out.Lock()
				fmt.Fprintf(os.Stdout, "ack %s\n", id) // unbuffered: one write per ack
				out.Unlock()
			}
		})
	}
	wg.Wait()
}

// TestCrashKeepsAcknowledged kills a process with SIGKILL in the middle of
// a burst of QoS 1-style appends: afterwards every acknowledged message is
// in the file exactly once, and the file passes bbolt's consistency check.
func TestCrashKeepsAcknowledged(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a helper process")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "telemetry.db")
	var acked []string     // over all rounds
	for round := range 3 { // the same file, killed three times
		acked = append(acked, crashOnce(t, exe, path, 2000+round*1000)...)
		checkFile(t, path)
		s, err := Open(path, Options{})
		if err != nil {
			t.Fatalf("reopen after kill %d: %v", round+1, err)
		}
		seen := make(map[string]int)
		total := 0
		for g := range crashGateways {
			q := Query{Gateway: fmt.Sprintf("CRASH-%d", g), Limit: MaxLimit}
			for {
				page, err := s.Query(context.Background(), q)
				if err != nil {
					t.Fatal(err)
				}
				for _, r := range page.Messages {
					var p struct{ ID string }
					if err := json.Unmarshal(r.Payload, &p); err != nil {
						t.Fatalf("stored payload %q: %v", r.Payload, err)
					}
					seen[p.ID]++
					total++
				}
				if page.Next == "" {
					break
				}
				q.After = page.Next
			}
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		missing := 0
		for _, id := range acked {
			if seen[id] == 0 {
				missing++
				if missing <= 5 {
					t.Errorf("round %d: acknowledged message %s is missing", round+1, id)
				}
			}
		}
		dups := 0
		for id, n := range seen {
			if n != 1 {
				dups++
				if dups <= 5 {
					t.Errorf("round %d: message %s stored %d times", round+1, id, n)
				}
			}
		}
		t.Logf("after kill %d: %d acknowledged, %d stored (%d were in flight); %d missing, %d duplicated",
			round+1, len(acked), total, total-len(acked), missing, dups)
		if t.Failed() {
			return
		}
	}
}

// crashOnce runs the helper on path, kills it with SIGKILL once it has
// acknowledged killAfter messages, and returns every id it acknowledged
// (including those it printed between the decision and the kill).
func crashOnce(t *testing.T, exe, path string, killAfter int) []string {
	t.Helper()
	cmd := exec.Command(exe, "-test.run=^TestCrashHelper$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashHelperEnv+"="+path)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	timer := time.AfterFunc(2*time.Minute, func() { cmd.Process.Kill() }) // a safety net, not timing
	defer timer.Stop()
	var acked []string
	killed := false
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		id, ok := strings.CutPrefix(sc.Text(), "ack ")
		if !ok {
			continue
		}
		acked = append(acked, id)
		if len(acked) == killAfter && !killed {
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			killed = true
		}
	}
	// A partial last line ("ack 3-1" of "ack 3-17") cannot happen: each ack
	// is one write(2) of a whole line, which SIGKILL cannot split.
	err = cmd.Wait()
	if !killed {
		t.Fatalf("helper ended after %d acks without being killed: %v\n%s", len(acked), err, stderr.String())
	}
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("helper ended with %v; want killed by SIGKILL\n%s", err, stderr.String())
	}
	return acked
}
