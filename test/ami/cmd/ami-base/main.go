// Command ami-base makes the Debian tree that test/ami provisions and boots, unless it is
// cached already. `make test` runs it beside the Go builds, so that on a new machine the
// download overlaps the compile instead of following it.
package main

import (
	"bytes"
	"fmt"
	"os"
	"time"

	"github.com/headnat/headnat/test/ami"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "ami-base:", err)
		os.Exit(1)
	}
}

func run() error {
	if os.Geteuid() != 0 {
		fmt.Println("ami-base: not root; test/ami makes the tree when it runs (as root)")
		return nil
	}
	start := time.Now()
	var log bytes.Buffer
	path, made, err := ami.EnsureBase(ami.CacheDir(), &log)
	if err != nil {
		os.Stderr.Write(log.Bytes())
		return err
	}
	if made {
		fmt.Printf("ami-base: made %s in %s\n", path, time.Since(start).Round(time.Second))
	} else {
		fmt.Printf("ami-base: %s is cached\n", path)
	}
	return nil
}
