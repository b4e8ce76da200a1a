package cloud

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"
)

// The IMDS tests run AWS's own ec2-metadata-mock, built from tools/ into bin/.

var (
	mockOnce sync.Once
	mockPath string
	mockErr  error
)

func metadataMockBinary(t *testing.T) string {
	t.Helper()
	mockOnce.Do(func() {
		if p := os.Getenv("HEADNAT_EC2_METADATA_MOCK"); p != "" {
			mockPath = p
			return
		}
		root, err := filepath.Abs("../..")
		if err != nil {
			mockErr = err
			return
		}
		p := filepath.Join(root, "bin", "ec2-metadata-mock")
		if _, err := os.Stat(p); err == nil {
			mockPath = p
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "go", "build", "-o", filepath.Join(root, "bin")+"/",
			"github.com/aws/amazon-ec2-metadata-mock/cmd/ec2-metadata-mock")
		cmd.Dir = filepath.Join(root, "tools")
		if out, err := cmd.CombinedOutput(); err != nil {
			mockErr = fmt.Errorf("build ec2-metadata-mock in tools/: %v\n%s", err, out)
			return
		}
		mockPath = p
	})
	if mockErr != nil {
		t.Skipf("ec2-metadata-mock unavailable (build it with `cd tools && go build -o ../bin/ tool`): %v", mockErr)
	}
	return mockPath
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// syncBuffer collects the mock's output for failure messages.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startMetadataMock runs ec2-metadata-mock IMDSv2-only on a free loopback port with the
// given metadata values (dashed keys) and extra flags, and returns its endpoint.
func startMetadataMock(t *testing.T, values map[string]string, args ...string) string {
	t.Helper()
	bin := metadataMockBinary(t)
	dir := t.TempDir()
	cfg, err := json.Marshal(map[string]any{"metadata": map[string]any{"values": values}})
	if err != nil {
		t.Fatal(err)
	}
	cfgFile := filepath.Join(dir, "aemm-config.json")
	if err := os.WriteFile(cfgFile, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	var lastOut string
	for try := 0; try < 3; try++ { // a free port can be taken between probe and bind
		port := strconv.Itoa(freePort(t))
		out := &syncBuffer{}
		cmd := exec.Command(bin, append([]string{"-I", "-n", "127.0.0.1", "-p", port, "-c", cfgFile}, args...)...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "HOME="+dir)
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatalf("start ec2-metadata-mock: %v", err)
		}
		exited := make(chan struct{})
		go func() { _ = cmd.Wait(); close(exited) }()
		stop := func() {
			_ = cmd.Process.Kill()
			<-exited
		}
		endpoint := "http://127.0.0.1:" + port
		if waitMetadataMock(endpoint, exited) {
			t.Cleanup(stop)
			return endpoint
		}
		stop()
		lastOut = out.String()
	}
	t.Fatalf("ec2-metadata-mock did not come up; output:\n%s", lastOut)
	return ""
}

func waitMetadataMock(endpoint string, exited <-chan struct{}) bool {
	hc := &http.Client{Timeout: 500 * time.Millisecond}
	for i := 0; i < 100; i++ {
		select {
		case <-exited:
			return false
		default:
		}
		req, _ := http.NewRequest(http.MethodPut, endpoint+"/latest/api/token", nil)
		req.Header.Set("X-aws-ec2-metadata-token-ttl-seconds", "60")
		resp, err := hc.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return true
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return false
}
