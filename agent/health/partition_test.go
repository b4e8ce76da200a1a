package health

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/headnat/headnat/agent/api"
)

// The secondary (tailnet) verdict over probe sequences. Each character is one probe round:
// vpc and tailnet say what each path gave ('h' a healthy answer, 'u' an unhealthy answer,
// 'x' no answer; tailnet '-': the peer had no tailnet address that round), want what the
// tracker concludes after it ('H' healthy, 'P' partitioned, 'D' neither, '.' not checked).
// Rise and fall are 3.
func TestPeerTrackerTailnetVerdict(t *testing.T) {
	cases := []struct {
		name, vpc, tailnet, want string
	}{
		{"partition: VPC fails, tailnet answers healthy",
			"hhhxxxxxxxxx", "hhhhhhhhhhhh", "..HHHPPPPPPP"},
		{"a flapping tailnet does not end the partition",
			"hhhxxxxxxxxxxxx", "hhhhhhxxhxxhxhx", "..HHHPPPPPPPPPP"},
		{"dead on both paths: dead in the probe the VPC verdict falls, no later",
			"hhhhxxx", "hhhhxxx", "..HHHHD"},
		{"partitioned, then silent on the tailnet too: dead after fall probes",
			"hhhxxxxxxxx", "hhhhhhhxxxx", "..HHHPPPPDD"},
		{"partitioned with its egress broken: unhealthy by its own answer, dead after fall",
			"hhhxxxxxxx", "hhhhhhuuuu", "..HHHPPPDD"},
		{"tailnet address missing for one round: still partitioned",
			"hhhxxxxxxx", "hhhhhh-hhh", "..HHHPPPPP"},
		{"tailnet address gone: a failed probe each round",
			"hhhxxxxxxx", "hhhhhh----", "..HHHPPPDD"},
		{"never a tailnet address: never partitioned",
			"hhhxxxxx", "--------", "..HHHDDD"},
		{"VPC back: rising, then healthy",
			"hhhxxxhhhh", "hhhhhhhhhh", "..HHHPDDHH"},
		{"fresh tracker across a partition: partitioned from the first answer",
			"xxxx", "hhhh", "PPPP"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			vpc, tailnet := &FakePath{}, &FakePath{}
			tr, err := NewPeerTracker(trackerConfig(), vpc, tailnet)
			if err != nil {
				t.Fatal(err)
			}
			t0 := time.Unix(7000, 0)
			asked := 0
			for i := range len(tc.want) {
				peer := Peer{ID: "i-b", IP: loopback, TailnetIP: loopback}
				set(vpc, tc.vpc[i])
				if tc.tailnet[i] == '-' {
					peer.TailnetIP = Peer{}.TailnetIP
					set(tailnet, 'h') // would answer, if it were asked
				} else {
					set(tailnet, tc.tailnet[i])
					asked++
				}
				s := tr.Probe(testCtx(t), []Peer{peer}, t0.Add(time.Duration(i)*time.Second))[0]
				got := byte('D')
				switch {
				case s.Healthy:
					got = 'H'
				case s.Partitioned():
					got = 'P'
				}
				if w := tc.want[i]; w != '.' && got != w {
					t.Fatalf("probe %d (vpc %q, tailnet %q): got %c, want %c; state %+v", i, tc.vpc[:i+1], tc.tailnet[:i+1], got, w, s)
				}
				if tc.tailnet[i] == '-' && (s.TailnetProbed || s.TailnetReachable || s.Via == api.ViaTailnet) {
					t.Fatalf("probe %d: no tailnet address, yet %+v", i, s)
				}
				if s.TailnetReachable != (tc.vpc[i] == 'x' && strings.IndexByte("hu", tc.tailnet[i]) >= 0) {
					t.Fatalf("probe %d: TailnetReachable %v is not this probe's fact", i, s.TailnetReachable)
				}
			}
			if n := tailnet.Calls("i-b"); n != asked {
				t.Fatalf("tailnet asked %d times, want %d (never without an address)", n, asked)
			}
		})
	}
}

func set(p *FakePath, c byte) {
	switch c {
	case 'h':
		p.Answer("i-b", api.Healthz{Instance: "i-b", Healthy: true})
	case 'u':
		p.Answer("i-b", api.Healthz{Instance: "i-b", Healthy: false, Reasons: []string{"egress"}})
	default:
		p.Fail("i-b", errors.New("i/o timeout"))
	}
}
