package vpcsim

// ---- DescribeSubnets

var subnetFields = fieldSet[*subnet]{
	tags: func(v *subnet) tags { return v.tags },
	fields: map[string]func(*state, *subnet) []string{
		"subnet-id":         func(_ *state, v *subnet) []string { return one(v.id) },
		"vpc-id":            func(_ *state, v *subnet) []string { return one(v.vpcID) },
		"availability-zone": func(_ *state, v *subnet) []string { return one(v.az) },
		"cidr-block":        func(_ *state, v *subnet) []string { return one(v.cidr.String()) },
		"cidr":              func(_ *state, v *subnet) []string { return one(v.cidr.String()) },
		"cidrBlock":         func(_ *state, v *subnet) []string { return one(v.cidr.String()) },
		"state":             func(*state, *subnet) []string { return one("available") },
		"default-for-az":    func(*state, *subnet) []string { return one("false") },
	},
}

func (s *Sim) describeSubnets(f form) ([]any, *apiError) {
	return describe(s, f, describeSpec[*subnet]{
		action: "DescribeSubnets", idParam: "SubnetId", kind: kindSubnet, fields: subnetFields,
		paging: pageRule{min: 5, max: 1000},
		lookup: func(st *state, id string) (*subnet, bool) { v, ok := st.subnets[id]; return v, ok },
		all:    func(st *state) []*subnet { return bySeq(st.subnets, subnetSeq) },
		seq:    subnetSeq,
		id:     func(v *subnet) string { return v.id },
		render: func(st *state, vs []*subnet) []any {
			set := xSubnetSet{Items: []xSubnet{}}
			for _, v := range vs {
				free := 1<<(32-v.cidr.Bits()) - 5
				for _, n := range st.enis {
					if !n.deleted && n.subnetID == v.id {
						free--
					}
				}
				set.Items = append(set.Items, xSubnet{
					SubnetID: v.id, SubnetArn: "arn:aws:ec2:" + s.opts.Region + ":" + s.opts.AccountID + ":subnet/" + v.id,
					State: "available", VpcID: v.vpcID, OwnerID: s.opts.AccountID, CidrBlock: v.cidr.String(),
					AvailableIPAddressCount: free, AvailabilityZone: v.az, Tags: xTags(v.tags),
				})
			}
			return []any{set}
		},
	})
}

// ---- DescribeVpcs

var vpcFields = fieldSet[*vpc]{
	tags: func(v *vpc) tags { return v.tags },
	fields: map[string]func(*state, *vpc) []string{
		"vpc-id":                            func(_ *state, v *vpc) []string { return one(v.id) },
		"cidr":                              func(_ *state, v *vpc) []string { return one(v.cidr.String()) },
		"cidr-block-association.cidr-block": func(_ *state, v *vpc) []string { return one(v.cidr.String()) },
		"state":                             func(*state, *vpc) []string { return one("available") },
		"is-default":                        func(*state, *vpc) []string { return one("false") },
	},
}

func (s *Sim) describeVpcs(f form) ([]any, *apiError) {
	return describe(s, f, describeSpec[*vpc]{
		action: "DescribeVpcs", idParam: "VpcId", kind: kindVpc, fields: vpcFields,
		paging: pageRule{min: 5, max: 1000},
		lookup: func(st *state, id string) (*vpc, bool) { v, ok := st.vpcs[id]; return v, ok },
		all:    func(st *state) []*vpc { return bySeq(st.vpcs, vpcSeq) },
		seq:    vpcSeq,
		id:     func(v *vpc) string { return v.id },
		render: func(_ *state, vs []*vpc) []any {
			set := xVpcSet{Items: []xVpc{}}
			for _, v := range vs {
				set.Items = append(set.Items, xVpc{VpcID: v.id, OwnerID: s.opts.AccountID, State: "available",
					CidrBlock: v.cidr.String(), InstanceTenancy: "default", Tags: xTags(v.tags)})
			}
			return []any{set}
		},
	})
}

func subnetSeq(v *subnet) int { return v.seq }

func vpcSeq(v *vpc) int { return v.seq }
