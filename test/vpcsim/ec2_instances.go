package vpcsim

import (
	"strconv"
)

// ---- DescribeInstances

var instanceFields = fieldSet[*instance]{
	tags: func(in *instance) tags { return in.tags },
	fields: map[string]func(*state, *instance) []string{
		"instance-id":         func(_ *state, in *instance) []string { return one(in.id) },
		"instance-state-name": func(_ *state, in *instance) []string { return one(in.state) },
		"instance-state-code": func(_ *state, in *instance) []string { return one(strconv.Itoa(stateCodes[in.state])) },
		"instance-type":       func(_ *state, in *instance) []string { return one(in.itype) },
		"availability-zone":   func(_ *state, in *instance) []string { return one(in.az) },
		"vpc-id":              func(st *state, in *instance) []string { return one(instLive(st, in, in.vpcID)) },
		"subnet-id":           func(st *state, in *instance) []string { return one(instLive(st, in, in.subnetID)) },
		"private-ip-address": func(st *state, in *instance) []string {
			if n := st.enis[in.eni]; n != nil && !n.deleted {
				return one(n.ip.String())
			}
			return nil
		},
		"network-interface.network-interface-id": func(st *state, in *instance) []string {
			return one(instLive(st, in, in.eni))
		},
	},
}

func instLive(st *state, in *instance, v string) string {
	if n := st.enis[in.eni]; n != nil && !n.deleted {
		return v
	}
	return ""
}

func (s *Sim) describeInstances(f form) ([]any, *apiError) {
	return describe(s, f, describeSpec[*instance]{
		action: "DescribeInstances", idParam: "InstanceId", kind: kindInstance, fields: instanceFields,
		paging: pageRule{min: 5, max: 1000, idsParam: "instancesSet"},
		lookup: func(st *state, id string) (*instance, bool) { v, ok := st.instances[id]; return v, ok },
		all:    func(st *state) []*instance { return bySeq(st.instances, instanceSeq) },
		seq:    instanceSeq,
		id:     func(v *instance) string { return v.id },
		render: func(st *state, ins []*instance) []any {
			set := xReservationSet{Items: []xReservation{}}
			for _, in := range ins {
				set.Items = append(set.Items, xReservation{
					ReservationID: in.reservation, OwnerID: s.opts.AccountID,
					Instances: []xInstance{s.xInstance(st, in)},
				})
			}
			return []any{set}
		},
	})
}

func instanceSeq(v *instance) int { return v.seq }

func (s *Sim) xInstance(st *state, in *instance) xInstance {
	x := xInstance{
		InstanceID: in.id, ImageID: "ami-0headnat000000001", InstanceType: in.itype,
		State:      xState{Code: stateCodes[in.state], Name: in.state},
		LaunchTime: xTime(in.launch), Placement: xPlacement{AvailabilityZone: in.az, Tenancy: "default"},
		Architecture: "arm64", RootDeviceType: "ebs", Hypervisor: "xen", Virtualization: "hvm",
		Tags: xTags(in.tags),
	}
	n := st.enis[in.eni]
	if n == nil || n.deleted {
		return x
	}
	x.PrivateIPAddress, x.SubnetID, x.VpcID = n.ip.String(), in.subnetID, in.vpcID
	sdc := n.sdc
	x.SourceDestCheck = &sdc
	ie := xInstanceENI{
		NetworkInterfaceID: n.id, SubnetID: n.subnetID, VpcID: n.vpcID, OwnerID: s.opts.AccountID,
		Status: "in-use", MacAddress: n.mac, PrivateIPAddress: n.ip.String(), SourceDestCheck: n.sdc,
		InterfaceType: "interface",
		Attachment: xAttachment{AttachmentID: n.attachID, DeviceIndex: 0, Status: "attached",
			AttachTime: xTime(in.launch), DeleteOnTermination: true},
	}
	if a := st.addrOfENI(n.id); a != nil {
		assoc := &xIPAssociation{PublicIP: a.public.String(), IPOwnerID: s.opts.AccountID}
		ie.Association = assoc
		x.IPAddress = a.public.String()
	}
	ie.PrivateIPs = []xPrivateIP{{PrivateIPAddress: n.ip.String(), Primary: true, Association: ie.Association}}
	x.ENIs = []xInstanceENI{ie}
	return x
}

func (s *Sim) modifyInstanceAttribute(f form) ([]any, *apiError) {
	on, set, aerr := f.boolean("SourceDestCheck.Value")
	if aerr != nil {
		return nil, aerr
	}
	if attr := f.get("Attribute"); attr != "" {
		if attr != "sourceDestCheck" {
			return nil, errf(400, "UnsupportedOperation", "vpcsim models only the sourceDestCheck attribute, not %s", attr)
		}
		v, err := strconv.ParseBool(f.get("Value"))
		if err != nil {
			return nil, errf(400, "InvalidParameterValue", "Value (%s) for parameter value is invalid. Expected a boolean.", f.get("Value"))
		}
		on, set = v, true
	}
	if k := unsupportedAttr(f, "InstanceId", "SourceDestCheck.Value", "Attribute", "Value"); k != "" {
		return nil, errf(400, "UnsupportedOperation", "vpcsim models only the sourceDestCheck attribute, not %s", k)
	}
	return okReturn, s.mutate(f, func(st *state) *apiError {
		id := f.get("InstanceId")
		if id == "" {
			return missing("instanceId")
		}
		if aerr := kindInstance.check(id, func(x string) bool { return st.instances[x] != nil }); aerr != nil {
			return aerr
		}
		if !set {
			return errf(400, "InvalidParameterCombination", "No attributes specified.")
		}
		in := st.instances[id]
		n := st.enis[in.eni]
		if in.state == StateTerminated || n == nil || n.deleted {
			return errf(400, "IncorrectInstanceState", "The instance '%s' is not in a state from which it can be modified (%s)", id, in.state)
		}
		n.sdc = on
		return nil
	})
}
