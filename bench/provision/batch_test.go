package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"

	"github.com/gwpki/gwpki/bench/internal/harness"

	"github.com/gwpki/gwpki/provisioning"
)

// benchEnv is a running gwpki serve with a station, shared by the
// benchmarks of one `go test` run.
type benchEnv struct {
	srv     *server
	dataDir string
	station *provisioning.Station
	rootPEM []byte
}

var (
	benchOnce sync.Once
	benchSrv  *benchEnv
	benchErr  error
	benchNext int // the next serial number, so that every batch is new
)

// startBenchEnv builds gwpki, initialises it in a temporary directory and
// starts gwpki serve, as the harness does; the server inherits this
// process's environment, so GWPKI_CPUPROFILE=FILE profiles it. It is
// stopped by TestMain.
func startBenchEnv(b *testing.B) *benchEnv {
	b.Helper()
	benchOnce.Do(func() {
		benchSrv, benchErr = newBenchEnv(context.Background())
	})
	if benchErr != nil {
		b.Fatal(benchErr)
	}
	return benchSrv
}

func newBenchEnv(ctx context.Context) (*benchEnv, error) {
	root, err := harness.ModuleRoot()
	if err != nil {
		return nil, err
	}
	work, err := os.MkdirTemp("", "gwpki-bench-provision-test-")
	if err != nil {
		return nil, err
	}
	benchWork = work
	bin := os.Getenv("GWPKI_BIN")
	if bin == "" {
		if bin, err = buildGwpki(ctx, root, filepath.Join(work, "bin"), gitDescribe(ctx, root)); err != nil {
			return nil, err
		}
	}
	dataDir := filepath.Join(work, "gwpki-data")
	if err := initGwpki(ctx, bin, dataDir, work); err != nil {
		return nil, err
	}
	srv, err := startGwpki(ctx, bin, dataDir, work, nil)
	if err != nil {
		return nil, err
	}
	station, err := provisioning.LoadStation(filepath.Join(dataDir, "station.json"))
	if err != nil {
		srv.stop()
		return nil, err
	}
	rootPEM, err := os.ReadFile(filepath.Join(dataDir, "certs", "root_ca.crt"))
	if err != nil {
		srv.stop()
		return nil, err
	}
	return &benchEnv{srv: srv, dataDir: dataDir, station: station, rootPEM: rootPEM}, nil
}

// benchWork is the benchmarks' work directory, removed by TestMain.
var benchWork string

func TestMain(m *testing.M) {
	code := m.Run()
	if benchSrv != nil {
		benchSrv.srv.stop()
	}
	if benchWork != "" {
		os.RemoveAll(benchWork)
	}
	os.Exit(code)
}

// BenchmarkRunBatch provisions b.N gateways in one provisioning.RunBatch,
// in this process, against a gwpki serve it starts: what `gwpki provision`
// does without the process around it, so that -cpuprofile shows where the
// client's time goes. The server's own profile: GWPKI_CPUPROFILE=FILE in
// the environment of go test. For example:
//
//	GWPKI_CPUPROFILE=/tmp/serve.prof go test -run '^$' -bench RunBatch/labels=off \
//	    -benchtime 10000x -cpuprofile /tmp/client.prof ./bench/provision
func BenchmarkRunBatch(b *testing.B) {
	for _, label := range []string{"off", "png"} {
		b.Run("labels="+label, func(b *testing.B) {
			env := startBenchEnv(b)
			conc, err := strconv.Atoi(defaultConcurrency)
			if err != nil {
				b.Fatal(err)
			}
			client, err := provisioning.NewClient(env.srv.apiURL, env.rootPEM, env.station, conc)
			if err != nil {
				b.Fatal(err)
			}
			serials := make([]string, b.N)
			for i := range serials {
				benchNext++
				serials[i] = fmt.Sprintf("BB-%06d", benchNext)
			}
			var labels []string
			if label != "off" {
				labels = []string{label}
			}
			opts := provisioning.BatchOptions{
				Client: client, Serials: serials, Model: "M1", Out: filepath.Join(b.TempDir(), "out"),
				Labels: labels, Concurrency: conc,
			}
			cpu0, _ := env.srv.cpuTime()
			b.ResetTimer()
			sum, err := provisioning.RunBatch(context.Background(), opts)
			b.StopTimer()
			cpu1, _ := env.srv.cpuTime()
			if err != nil {
				b.Fatal(err)
			}
			if sum.Done != b.N {
				b.Fatalf("RunBatch of %d gateways: %d done, %d failed", b.N, sum.Done, sum.Failed)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "gateways/s")
			b.ReportMetric(ms(cpu1-cpu0)/float64(b.N), "server-ms/gateway")
		})
	}
}
