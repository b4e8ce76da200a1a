//go:build !linux

package lab

import (
	"errors"
	"net/netip"

	"github.com/headnat/headnat/test/vpcsim"
)

var errNotLinux = errors.New("kernel sink: needs Linux network namespaces")

// KernelSink mirrors a vpcsim.Sim into a Linux router namespace; elsewhere it only fails.
type KernelSink struct{}

// NewKernelSink fails on this system.
func NewKernelSink(cfg KernelConfig) (*KernelSink, error) { return nil, errNotLinux }

// Setup fails on this system.
func (k *KernelSink) Setup() error { return errNotLinux }

// Close does nothing on this system.
func (k *KernelSink) Close() error { return nil }

// DefaultRoute fails on this system.
func (k *KernelSink) DefaultRoute(string, vpcsim.KernelRoute) error { return errNotLinux }

// SourceDestCheck fails on this system.
func (k *KernelSink) SourceDestCheck(string, netip.Addr, bool) error { return errNotLinux }

// ElasticIP fails on this system.
func (k *KernelSink) ElasticIP(netip.Addr, netip.Addr, bool) error { return errNotLinux }

// AddSDCLeg fails on this system.
func (k *KernelSink) AddSDCLeg(string) error { return errNotLinux }
