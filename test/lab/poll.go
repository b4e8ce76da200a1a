package lab

import (
	"context"
	"time"
)

// Sleep waits d, or less if ctx ends first (then it returns ctx's error).
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Poll checks cond every interval until it holds (true), timeout passes (false) or ctx ends
// (its error).
func Poll(ctx context.Context, timeout, every time.Duration, cond func() bool) (bool, error) {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return false, nil
		}
		if err := Sleep(ctx, every); err != nil {
			return false, err
		}
	}
	return true, nil
}
