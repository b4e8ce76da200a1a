package cloud

import (
	"bytes"
	"log/slog"
	"sort"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/credentials"
)

var testCreds = credentials.NewStaticCredentialsProvider("AKIDTEST", "secret-test", "")

// recorder is an Observer that counts API errors by "op/code".
type recorder struct {
	mu sync.Mutex
	n  map[string]int
}

func (r *recorder) APIError(op, code string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.n == nil {
		r.n = map[string]int{}
	}
	r.n[op+"/"+code]++
}

func (r *recorder) counts() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]int{}
	for k, v := range r.n {
		out[k] = v
	}
	return out
}

func (r *recorder) keys() []string {
	var ks []string
	for k := range r.counts() {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// logBuffer is a slog sink the test can read, and echo on failure.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func testLogger(t *testing.T) (*slog.Logger, *logBuffer) {
	t.Helper()
	buf := &logBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("client log:\n%s", buf.String())
		}
	})
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})), buf
}
