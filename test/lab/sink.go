package lab

import (
	"errors"
	"net/netip"
	"sync"

	"github.com/headnat/headnat/test/vpcsim"
)

// lateSink forwards to KernelSink once the route table IDs it maps are known: the
// simulator generates them while the lab seeds it, and seeding notifies nobody until Sync.
type lateSink struct {
	mu sync.Mutex
	k  *KernelSink
}

func (s *lateSink) get() *KernelSink {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.k
}

func (s *lateSink) DefaultRoute(table string, r vpcsim.KernelRoute) error {
	if k := s.get(); k != nil {
		return k.DefaultRoute(table, r)
	}
	return nil
}

func (s *lateSink) SourceDestCheck(eni string, ip netip.Addr, on bool) error {
	if k := s.get(); k != nil {
		return k.SourceDestCheck(eni, ip, on)
	}
	return nil
}

func (s *lateSink) ElasticIP(private, public netip.Addr, associated bool) error {
	if k := s.get(); k != nil {
		return k.ElasticIP(private, public, associated)
	}
	return nil
}

// connectKernel points the sink at the router's kernel, one kernel table per private route
// table, source/dest check modelled on the public legs.
func (l *Lab) connectKernel(s *lateSink) error {
	cfg := KernelConfig{
		Namespace: l.Router.Name,
		Tables:    map[string]KernelTable{},
		IGW:       "igw",
		Logger:    l.log.With("component", "kernel-sink"),
	}
	for _, site := range l.Sites() {
		cfg.Tables[site.RouteTable] = KernelTable{Table: site.KernelTable, Iifs: []string{site.prvIf()}}
	}
	for _, nat := range l.NATs() {
		cfg.SDCLegs = append(cfg.SDCLegs, nat.pubIf())
	}
	k, err := NewKernelSink(cfg)
	if err != nil {
		return err
	}
	if err := k.Setup(); err != nil {
		return err
	}
	s.mu.Lock()
	s.k = k
	s.mu.Unlock()
	return nil
}

// addSDCLeg models source/dest check on a router leg added at runtime.
func (s *lateSink) addSDCLeg(leg string) error {
	k := s.get()
	if k == nil {
		return errors.New("kernel sink not connected")
	}
	return k.AddSDCLeg(leg)
}
