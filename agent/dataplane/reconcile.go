package dataplane

import "slices"

// chainOp is one write to an owned chain: insert rule at pos, or delete the rule at pos
// (which must be rule). Positions are 1-based and valid at the time the op runs.
type chainOp struct {
	insert bool
	pos    int
	rule   []string
}

// planChain works out the writes that turn the chain cur into want. It keeps the longest
// common subsequence of the two in place, inserts every missing rule at its position first,
// and only then deletes what is left over (stale, duplicated or out-of-order copies), from
// the bottom up so that earlier positions stay valid. A rule that is in want is therefore
// never absent from the chain while another is being fixed.
func planChain(cur, want [][]string) []chainOp {
	n, m := len(cur), len(want)
	lcs := make([][]int, n+1)
	for i := range lcs {
		lcs[i] = make([]int, m+1)
	}
	for i := n - 1; i >= 0; i-- {
		for j := m - 1; j >= 0; j-- {
			if slices.Equal(cur[i], want[j]) {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	matched := make([]int, m) // want index -> cur index, or -1
	for j := range matched {
		matched[j] = -1
	}
	for i, j := 0, 0; i < n && j < m; {
		switch {
		case slices.Equal(cur[i], want[j]):
			matched[j] = i
			i++
			j++
		case lcs[i+1][j] >= lcs[i][j+1]:
			i++
		default:
			j++
		}
	}

	type entry struct {
		rule []string
		cur  int // index in cur, or -1 when inserted
		keep bool
	}
	live := make([]entry, n)
	for i, r := range cur {
		live[i] = entry{rule: r, cur: i}
	}
	for _, i := range matched {
		if i >= 0 {
			live[i].keep = true
		}
	}
	indexOf := func(curIdx int) int {
		for k, e := range live {
			if e.cur == curIdx {
				return k
			}
		}
		panic("planChain: lost a kept rule")
	}

	var ops []chainOp
	after := -1 // index in live of the last rule of want placed so far
	for j, r := range want {
		if matched[j] >= 0 {
			after = indexOf(matched[j])
			continue
		}
		live = slices.Insert(live, after+1, entry{rule: r, cur: -1, keep: true})
		after++
		ops = append(ops, chainOp{insert: true, pos: after + 1, rule: r})
	}
	for k := len(live) - 1; k >= 0; k-- {
		if !live[k].keep {
			ops = append(ops, chainOp{pos: k + 1, rule: live[k].rule})
		}
	}
	return ops
}
