//go:build !linux

package dataplane

import (
	"errors"
	"log/slog"
)

// New is only supported on Linux.
func New(log *slog.Logger) (*Dataplane, error) {
	return nil, errors.New("dataplane: only supported on Linux")
}
