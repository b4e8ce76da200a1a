package lab

import (
	"context"
	"fmt"
	"net"
	"runtime"

	"github.com/vishvananda/netns"
)

// The main goroutine keeps the main thread for itself, so InNS never switches the main thread:
// `ip netns pids` judges a process by its main thread and would count this process as living
// in a lab namespace (and deleting the namespace would then kill it).
func init() { runtime.LockOSThread() }

// InNS runs fn on an OS thread switched into the named network namespace. Sockets created by
// fn stay in that namespace after it returns. fn must not start goroutines that create
// sockets or processes: they would run on other threads.
func InNS(name string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("current netns: %w", err)
			return
		}
		defer orig.Close()
		target, err := netns.GetFromName(name)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("netns %s: %w", name, err)
			return
		}
		defer target.Close()
		if err := netns.Set(target); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("enter netns %s: %w", name, err)
			return
		}
		ferr := fn()
		// If the thread cannot go back, it stays locked and dies with this goroutine.
		if err := netns.Set(orig); err == nil {
			runtime.UnlockOSThread()
		}
		errc <- ferr
	}()
	return <-errc
}

// ListenIn opens a TCP listener inside the named namespace.
func ListenIn(name, addr string) (net.Listener, error) {
	var ln net.Listener
	err := InNS(name, func() error {
		var err error
		ln, err = net.Listen("tcp", addr)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("listen on %s in %s: %w", addr, name, err)
	}
	return ln, nil
}

// DialerIn returns a DialContext function whose connections start inside the named namespace.
// Addresses must be IP literals (no resolver runs inside the namespace).
func DialerIn(name string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		var c net.Conn
		err := InNS(name, func() error {
			var d net.Dialer
			var err error
			c, err = d.DialContext(ctx, network, addr)
			return err
		})
		return c, err
	}
}
