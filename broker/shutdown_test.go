package broker

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// TestCloseWhileGatewaysConnect closes the broker while gateways are in
// the middle of connecting (handshake, CONNECT, session establishment,
// taking over their own previous session) and keep their connections open
// afterwards, as a live gateway does: Close must drop every one of them
// and return, whatever point of its connection each had reached. A
// session established just before mochi listed its clients used to be
// closed by nobody, and Close waited for it as long as the gateway stayed;
// a gateway leaving while mochi listed its clients deadlocked mochi's
// clients lock (Clients.GetByListener takes its read lock twice).
func TestCloseWhileGatewaysConnect(t *testing.T) {
	for round := range 100 {
		e := newEnv(t, nil)
		const n = 8
		leaves := make([]*leaf, n)
		for i := range leaves {
			leaves[i] = e.gateway(t, fmt.Sprintf("GW%04d", 100+i))
		}
		stop := make(chan struct{})
		var (
			mu    sync.Mutex
			conns []net.Conn
		)
		var wg sync.WaitGroup
		for i, l := range leaves {
			wg.Add(1)
			go func() {
				defer wg.Done()
				id := fmt.Sprintf("GW%04d", 100+i)
				for {
					select {
					case <-stop:
						return
					default:
					}
					c, err := tls.DialWithDialer(&net.Dialer{Timeout: time.Second}, "tcp", e.broker.Addr().String(), e.clientTLS(l))
					if err != nil {
						time.Sleep(time.Millisecond)
						continue
					}
					mu.Lock()
					conns = append(conns, c)
					mu.Unlock()
					// Keep-alive 0: the broker sets no read deadline, so
					// only the broker's Close ends this connection.
					_, _ = c.Write(connectPacket(id, 0))
					buf := make([]byte, 64)
					if i%2 == 1 {
						// Half of them leave again at once (mochi deletes
						// the client under its clients lock meanwhile).
						if _, err := io.ReadFull(c, buf[:4]); err == nil {
							_, _ = c.Write([]byte{0xe0, 0})
						}
					}
					for {
						if _, err := c.Read(buf); err != nil {
							break
						}
					}
					c.Close()
				}
			}()
		}
		time.Sleep(time.Duration(5+round%20) * time.Millisecond)
		done := make(chan struct{})
		go func() { e.broker.Close(); close(done) }()
		var hung bool
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			hung = true
		}
		close(stop)
		if hung {
			// Let Close (and the test's cleanup) finish.
			mu.Lock()
			for _, c := range conns {
				c.Close()
			}
			mu.Unlock()
		}
		wg.Wait()
		if hung {
			t.Fatalf("round %d: Close did not return within 10s while a gateway stayed connected", round)
		}
	}
}
