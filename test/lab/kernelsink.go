package lab

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"regexp"
	"time"
)

// Chains KernelSink owns; it never touches others' chains beyond one jump rule each.
const (
	ChainSDC   = "VPCSIM-SDC"    // filter, jumped to from FORWARD
	ChainEIP   = "VPCSIM-EIP"    // nat, jumped to from POSTROUTING (SNAT private -> EIP)
	ChainEIPIn = "VPCSIM-EIP-IN" // nat, jumped to from PREROUTING (DNAT EIP -> private)
)

// KernelTable is the kernel side of one private route table in the router namespace.
type KernelTable struct {
	Table int      // kernel routing table number, e.g. 110
	Iifs  []string // router legs of the subnets associated with the table, e.g. {"prv-a"}
}

// KernelConfig configures a KernelSink. It follows docs/ARCHITECTURE.md "Lab routing".
type KernelConfig struct {
	// Namespace is the vpc-router network namespace. Required: KernelSink never changes the
	// namespace it runs in.
	Namespace string
	// Tables maps route table IDs to kernel tables. Route tables not listed (the VPC's main
	// table, public tables) are ignored.
	Tables map[string]KernelTable
	// IGW is the router's leg towards the internet namespace; default "igw".
	IGW string
	// Local is thrown from every kernel table back to the main table (VPC-local traffic);
	// default 198.18.0.0/15.
	Local netip.Prefix
	// SDCLegs limits source/dest check modelling to ENIs behind these router legs (e.g. the
	// public legs where the NAT instances live). Empty means every leg. The check is modelled
	// as "drop forwarded packets out of the ENI's leg not addressed to the ENI", which assumes
	// one ENI per leg.
	SDCLegs []string
	Logger  *slog.Logger
	// Timeout bounds each command; default 10s.
	Timeout time.Duration
}

var ifaceName = regexp.MustCompile(`^[A-Za-z0-9_.@-]{1,15}$`)

func (c *KernelConfig) validate() error {
	if c.Namespace == "" {
		return errors.New("kernel sink: empty Namespace (refusing to change the current namespace)")
	}
	if c.IGW == "" {
		c.IGW = "igw"
	}
	if !ifaceName.MatchString(c.IGW) {
		return fmt.Errorf("kernel sink: invalid IGW interface %q", c.IGW)
	}
	if !c.Local.IsValid() {
		c.Local = netip.MustParsePrefix("198.18.0.0/15")
	}
	c.Local = c.Local.Masked()
	if c.Timeout <= 0 {
		c.Timeout = 10 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	used := map[int]string{}
	for id, t := range c.Tables {
		switch {
		case t.Table <= 0 || t.Table >= 253 && t.Table <= 255:
			return fmt.Errorf("kernel sink: route table %s: kernel table %d is reserved or invalid", id, t.Table)
		case used[t.Table] != "":
			return fmt.Errorf("kernel sink: route tables %s and %s both use kernel table %d", used[t.Table], id, t.Table)
		case len(t.Iifs) == 0:
			return fmt.Errorf("kernel sink: route table %s: no input interface", id)
		}
		used[t.Table] = id
		for _, i := range t.Iifs {
			if !ifaceName.MatchString(i) {
				return fmt.Errorf("kernel sink: route table %s: invalid interface %q", id, i)
			}
		}
	}
	for _, l := range c.SDCLegs {
		if !ifaceName.MatchString(l) {
			return fmt.Errorf("kernel sink: invalid SDC leg %q", l)
		}
	}
	return nil
}
