package ec2emu

import (
	"net"
	"sort"
	"strconv"
	"strings"
)

type ec2Handler func(s *Server, req *request) (header, *apiError)

var ec2Actions = map[string]ec2Handler{
	"DescribeRegions":               (*Server).describeRegions,
	"DescribeAvailabilityZones":     (*Server).describeAZs,
	"DescribeVpcs":                  (*Server).describeVpcs,
	"DescribeSubnets":               (*Server).describeSubnets,
	"CreateKeyPair":                 (*Server).createKeyPair,
	"ImportKeyPair":                 (*Server).importKeyPair,
	"DeleteKeyPair":                 (*Server).deleteKeyPair,
	"DescribeKeyPairs":              (*Server).describeKeyPairs,
	"CreateSecurityGroup":           (*Server).createSecurityGroup,
	"AuthorizeSecurityGroupIngress": (*Server).authorizeIngress,
	"RevokeSecurityGroupIngress":    (*Server).revokeIngress,
	"DescribeSecurityGroups":        (*Server).describeSecurityGroups,
	"DeleteSecurityGroup":           (*Server).deleteSecurityGroup,
	"CreateTags":                    (*Server).createTags,
	"DeleteTags":                    (*Server).deleteTags,
	"DescribeTags":                  (*Server).describeTags,
	"RunInstances":                  (*Server).runInstances,
	"DescribeInstances":             (*Server).describeInstances,
	"DescribeInstanceStatus":        (*Server).describeInstanceStatus,
	"StopInstances":                 (*Server).stopInstances,
	"StartInstances":                (*Server).startInstances,
	"TerminateInstances":            (*Server).terminateInstances,
	"DescribeImages":                (*Server).describeImages,
	"CreateImage":                   (*Server).createImage,
	"CopyImage":                     (*Server).copyImage,
	"ModifyImageAttribute":          (*Server).modifyImageAttribute,
	"DescribeImageAttribute":        (*Server).describeImageAttribute,
	"EnableImageDeprecation":        (*Server).enableImageDeprecation,
	"DisableImageDeprecation":       (*Server).disableImageDeprecation,
	"DeregisterImage":               (*Server).deregisterImage,
	"DescribeSnapshots":             (*Server).describeSnapshots,
	"DeleteSnapshot":                (*Server).deleteSnapshot,
	"DescribeVolumes":               (*Server).describeVolumes,
	"DeleteVolume":                  (*Server).deleteVolume,
}

// Actions lists the EC2 actions the emulator implements.
func Actions() []string {
	out := make([]string, 0, len(ec2Actions))
	for a := range ec2Actions {
		out = append(out, a)
	}
	sort.Strings(out)
	return out
}

// dispatchEC2 runs under s.mu.
func (s *Server) dispatchEC2(req *request) (any, *apiError) {
	h := ec2Actions[req.action]
	if h == nil {
		return nil, errf("InvalidAction", "The action %s is not valid for this web service (not implemented by the emulator).", req.action)
	}
	if req.p.boolean("DryRun") {
		return nil, errf("DryRunOperation", "Request would have succeeded, but DryRun flag is set.")
	}
	out, err := h(s, req)
	if err != nil {
		return nil, err
	}
	return out, nil
}

// --- regions and zones ---

type regionXML struct {
	Name     string `xml:"regionName"`
	Endpoint string `xml:"regionEndpoint"`
	OptIn    string `xml:"optInStatus"`
}

func (s *Server) describeRegions(req *request) (header, *apiError) {
	names := req.p.list("RegionName")
	fs := req.p.filters()
	out := &struct {
		Envelope
		Regions []regionXML `xml:"regionInfo>item"`
	}{}
	host := strings.TrimPrefix(strings.TrimPrefix(s.endpoint, "http://"), "https://")
	for _, name := range s.opts.Regions {
		if len(names) > 0 && !contains(names, name) {
			continue
		}
		ok, err := matchFilters(fs, nil, func(f string) ([]string, bool) {
			switch f {
			case "region-name":
				return one(name), true
			case "endpoint":
				return one(host), true
			case "opt-in-status":
				return one("opt-in-not-required"), true
			}
			return nil, false
		})
		if err != nil {
			return nil, err
		}
		if ok {
			out.Regions = append(out.Regions, regionXML{Name: name, Endpoint: host, OptIn: "opt-in-not-required"})
		}
	}
	for _, n := range names {
		if s.regions[n] == nil {
			return nil, errf("InvalidParameterValue", "Invalid region: %s", n)
		}
	}
	return out, nil
}

type azXML struct {
	Name      string `xml:"zoneName"`
	ID        string `xml:"zoneId"`
	State     string `xml:"zoneState"`
	Region    string `xml:"regionName"`
	ZoneType  string `xml:"zoneType"`
	OptIn     string `xml:"optInStatus"`
	Group     string `xml:"groupName"`
	BorderGrp string `xml:"networkBorderGroup"`
}

func (r *region) zones() []string {
	set := map[string]bool{r.name + "a": true, r.name + "b": true, r.name + "c": true}
	for _, sn := range r.subnets {
		set[sn.az] = true
	}
	out := make([]string, 0, len(set))
	for z := range set {
		out = append(out, z)
	}
	sort.Strings(out)
	return out
}

func (s *Server) describeAZs(req *request) (header, *apiError) {
	r := req.region
	names := req.p.list("ZoneName")
	ids := req.p.list("ZoneId")
	fs := req.p.filters()
	out := &struct {
		Envelope
		Zones []azXML `xml:"availabilityZoneInfo>item"`
	}{}
	for i, z := range r.zones() {
		id := r.name + "-az" + strconv.Itoa(i+1)
		if len(names) > 0 && !contains(names, z) || len(ids) > 0 && !contains(ids, id) {
			continue
		}
		ok, err := matchFilters(fs, nil, func(f string) ([]string, bool) {
			switch f {
			case "zone-name":
				return one(z), true
			case "zone-id":
				return one(id), true
			case "region-name":
				return one(r.name), true
			case "state":
				return one("available"), true
			case "zone-type":
				return one("availability-zone"), true
			}
			return nil, false
		})
		if err != nil {
			return nil, err
		}
		if ok {
			out.Zones = append(out.Zones, azXML{Name: z, ID: id, State: "available", Region: r.name,
				ZoneType: "availability-zone", OptIn: "opt-in-not-required", Group: r.name, BorderGrp: r.name})
		}
	}
	for _, n := range names {
		if !contains(r.zones(), n) {
			return nil, errf("InvalidParameterValue", "The zone '%s' does not exist.", n)
		}
	}
	return out, nil
}

// --- VPCs and subnets ---

type vpcXML struct {
	ID        string   `xml:"vpcId"`
	State     string   `xml:"state"`
	CIDR      string   `xml:"cidrBlock"`
	DHCP      string   `xml:"dhcpOptionsId"`
	Tenancy   string   `xml:"instanceTenancy"`
	IsDefault bool     `xml:"isDefault"`
	Owner     string   `xml:"ownerId"`
	Tags      []tagXML `xml:"tagSet>item"`
}

func (s *Server) describeVpcs(req *request) (header, *apiError) {
	r := req.region
	ids := req.p.list("VpcId")
	for _, id := range ids {
		if r.vpcs[id] == nil {
			return nil, errf("InvalidVpcID.NotFound", "The vpc ID '%s' does not exist", id)
		}
	}
	var items []vpcXML
	for _, v := range sortedBySeq(r.vpcs, func(v *vpc) int64 { return v.seq }) {
		if len(ids) > 0 && !contains(ids, v.id) {
			continue
		}
		ok, err := matchFilters(req.p.filters(), v.tags, func(f string) ([]string, bool) {
			switch f {
			case "vpc-id":
				return one(v.id), true
			case "cidr", "cidr-block-association.cidr-block", "cidr-block":
				return one(v.cidr), true
			case "is-default", "isDefault":
				return one(boolStr(v.isDefault)), true
			case "state":
				return one("available"), true
			case "owner-id":
				return one(s.account), true
			}
			return nil, false
		})
		if err != nil {
			return nil, err
		}
		if ok {
			items = append(items, vpcXML{ID: v.id, State: "available", CIDR: v.cidr, DHCP: "dopt-00000000",
				Tenancy: "default", IsDefault: v.isDefault, Owner: s.account, Tags: tagList(v.tags)})
		}
	}
	pg, next, err := page(req.p, items, 5, 1000)
	if err != nil {
		return nil, err
	}
	return &struct {
		Envelope
		Vpcs []vpcXML `xml:"vpcSet>item"`
		Next string   `xml:"nextToken,omitempty"`
	}{Vpcs: pg, Next: next}, nil
}

type subnetXML struct {
	ID          string   `xml:"subnetId"`
	State       string   `xml:"state"`
	VpcID       string   `xml:"vpcId"`
	CIDR        string   `xml:"cidrBlock"`
	Available   int      `xml:"availableIpAddressCount"`
	AZ          string   `xml:"availabilityZone"`
	AZID        string   `xml:"availabilityZoneId"`
	DefaultAZ   bool     `xml:"defaultForAz"`
	MapPublicIP bool     `xml:"mapPublicIpOnLaunch"`
	Owner       string   `xml:"ownerId"`
	ARN         string   `xml:"subnetArn"`
	Tags        []tagXML `xml:"tagSet>item"`
}

func (r *region) azID(az string) string {
	for i, z := range r.zones() {
		if z == az {
			return r.name + "-az" + strconv.Itoa(i+1)
		}
	}
	return ""
}

func (s *Server) describeSubnets(req *request) (header, *apiError) {
	r := req.region
	ids := req.p.list("SubnetId")
	for _, id := range ids {
		if r.subnets[id] == nil {
			return nil, errf("InvalidSubnetID.NotFound", "The subnet ID '%s' does not exist", id)
		}
	}
	var items []subnetXML
	for _, sn := range sortedBySeq(r.subnets, func(v *subnet) int64 { return v.seq }) {
		if len(ids) > 0 && !contains(ids, sn.id) {
			continue
		}
		ok, err := matchFilters(req.p.filters(), sn.tags, func(f string) ([]string, bool) {
			switch f {
			case "subnet-id":
				return one(sn.id), true
			case "vpc-id":
				return one(sn.vpcID), true
			case "availability-zone", "availabilityZone":
				return one(sn.az), true
			case "availability-zone-id":
				return one(r.azID(sn.az)), true
			case "cidr-block", "cidr", "cidrBlock":
				return one(sn.cidr), true
			case "default-for-az", "defaultForAz":
				return one(boolStr(sn.defAZ)), true
			case "map-public-ip-on-launch":
				return one(boolStr(sn.mapPublic)), true
			case "state":
				return one("available"), true
			case "owner-id":
				return one(s.account), true
			}
			return nil, false
		})
		if err != nil {
			return nil, err
		}
		if ok {
			items = append(items, subnetXML{ID: sn.id, State: "available", VpcID: sn.vpcID, CIDR: sn.cidr,
				Available: sn.available(), AZ: sn.az, AZID: r.azID(sn.az), DefaultAZ: sn.defAZ, MapPublicIP: sn.mapPublic,
				Owner: s.account, ARN: "arn:aws:ec2:" + r.name + ":" + s.account + ":subnet/" + sn.id, Tags: tagList(sn.tags)})
		}
	}
	pg, next, err := page(req.p, items, 5, 1000)
	if err != nil {
		return nil, err
	}
	return &struct {
		Envelope
		Subnets []subnetXML `xml:"subnetSet>item"`
		Next    string      `xml:"nextToken,omitempty"`
	}{Subnets: pg, Next: next}, nil
}

// --- security groups ---

type ipRangeXML struct {
	CIDR string `xml:"cidrIp"`
	Desc string `xml:"description,omitempty"`
}

type groupPairXML struct {
	GroupID string `xml:"groupId"`
	UserID  string `xml:"userId"`
}

type ipPermXML struct {
	Proto  string         `xml:"ipProtocol"`
	From   *int           `xml:"fromPort,omitempty"`
	To     *int           `xml:"toPort,omitempty"`
	Groups []groupPairXML `xml:"groups>item"`
	Ranges []ipRangeXML   `xml:"ipRanges>item"`
}

type secGroupXML struct {
	Owner   string      `xml:"ownerId"`
	ID      string      `xml:"groupId"`
	Name    string      `xml:"groupName"`
	Desc    string      `xml:"groupDescription"`
	VpcID   string      `xml:"vpcId"`
	ARN     string      `xml:"securityGroupArn"`
	Ingress []ipPermXML `xml:"ipPermissions>item"`
	Egress  []ipPermXML `xml:"ipPermissionsEgress>item"`
	Tags    []tagXML    `xml:"tagSet>item"`
}

func (s *Server) permsXML(perms []ipPerm) []ipPermXML {
	var out []ipPermXML
	for _, p := range perms {
		x := ipPermXML{Proto: p.proto}
		if p.ports {
			from, to := p.from, p.to
			x.From, x.To = &from, &to
		}
		for _, rg := range p.ranges {
			x.Ranges = append(x.Ranges, ipRangeXML{CIDR: rg.cidr, Desc: rg.desc})
		}
		for _, g := range p.groups {
			x.Groups = append(x.Groups, groupPairXML{GroupID: g, UserID: s.account})
		}
		out = append(out, x)
	}
	return out
}

func (s *Server) createSecurityGroup(req *request) (header, *apiError) {
	r := req.region
	name, desc := req.p.str("GroupName"), req.p.str("GroupDescription")
	if name == "" {
		return nil, errf("MissingParameter", "The request must contain the parameter groupName")
	}
	if desc == "" {
		return nil, errf("MissingParameter", "The request must contain the parameter groupDescription")
	}
	if len(name) > 255 || len(desc) > 255 {
		return nil, errf("InvalidParameterValue", "Group name and description must be at most 255 characters")
	}
	if strings.HasPrefix(name, "sg-") {
		return nil, errf("InvalidParameterValue", "Group names may not be in the format sg-*")
	}
	if err := req.p.validTagSpecs("security-group"); err != nil {
		return nil, err
	}
	vpcID := req.p.str("VpcId")
	if vpcID == "" {
		dv := r.defaultVPC()
		if dv == nil {
			return nil, errf("VPCIdNotSpecified", "No default VPC for this user")
		}
		vpcID = dv.id
	} else if r.vpcs[vpcID] == nil {
		return nil, errf("InvalidVpcID.NotFound", "The vpc ID '%s' does not exist", vpcID)
	}
	for _, g := range r.groups {
		if g.vpcID == vpcID && g.name == name {
			return nil, errf("InvalidGroup.Duplicate", "The security group '%s' already exists for VPC '%s'", name, vpcID)
		}
	}
	g := r.addGroup(vpcID, name, desc, false, req.p.tagSpecs("security-group"))
	return &struct {
		Envelope
		GroupID string   `xml:"groupId"`
		ARN     string   `xml:"securityGroupArn"`
		Tags    []tagXML `xml:"tagSet>item"`
	}{GroupID: g.id, ARN: "arn:aws:ec2:" + r.name + ":" + s.account + ":security-group/" + g.id, Tags: tagList(g.tags)}, nil
}

// findGroup resolves GroupId or GroupName (default VPC).
func (r *region) findGroup(p params) (*secGroup, *apiError) {
	if id := p.str("GroupId"); id != "" {
		return r.group(id)
	}
	name := p.str("GroupName")
	if name == "" {
		return nil, errf("MissingParameter", "The request must contain the parameter groupId or groupName")
	}
	dv := r.defaultVPC()
	for _, g := range r.groups {
		if g.name == name && dv != nil && g.vpcID == dv.id {
			return g, nil
		}
	}
	return nil, errf("InvalidGroup.NotFound", "The security group '%s' does not exist in default VPC", name)
}

func (r *region) parsePerms(p params) ([]ipPerm, *apiError) {
	var out []ipPerm
	n := p.count("IpPermissions")
	for i := 1; i <= n; i++ {
		pre := "IpPermissions." + strconv.Itoa(i)
		perm := ipPerm{proto: strings.ToLower(p.str(pre + ".IpProtocol"))}
		switch perm.proto {
		case "6":
			perm.proto = "tcp"
		case "17":
			perm.proto = "udp"
		case "1":
			perm.proto = "icmp"
		}
		switch perm.proto {
		case "tcp", "udp", "icmp":
			from, err := p.integer(pre+".FromPort", -1)
			if err != nil {
				return nil, err
			}
			to, err := p.integer(pre+".ToPort", -1)
			if err != nil {
				return nil, err
			}
			if perm.proto != "icmp" && (from < 0 || to > 65535 || from > to) {
				return nil, errf("InvalidParameterValue", "Invalid port range %d-%d for protocol %s", from, to, perm.proto)
			}
			perm.from, perm.to, perm.ports = from, to, true
		case "-1", "all":
			perm.proto = "-1"
		case "":
			return nil, errf("MissingParameter", "The request must contain the parameter ipProtocol")
		default:
			return nil, errf("InvalidParameterValue", "Invalid value '%s' for IP protocol. Unknown protocol.", perm.proto)
		}
		for j := 1; j <= p.count(pre+".IpRanges"); j++ {
			rp := pre + ".IpRanges." + strconv.Itoa(j)
			cidr := p.str(rp + ".CidrIp")
			if _, _, err := net.ParseCIDR(cidr); err != nil {
				return nil, errf("InvalidParameterValue", "CIDR block %s is malformed", cidr)
			}
			perm.ranges = append(perm.ranges, ipRange{cidr: cidr, desc: p.str(rp + ".Description")})
		}
		for j := 1; j <= p.count(pre+".Groups"); j++ {
			gid := p.str(pre + ".Groups." + strconv.Itoa(j) + ".GroupId")
			if _, err := r.group(gid); err != nil {
				return nil, err
			}
			perm.groups = append(perm.groups, gid)
		}
		if len(perm.ranges) == 0 && len(perm.groups) == 0 {
			return nil, errf("InvalidParameterValue", "A source (CIDR or group) is required for every permission")
		}
		out = append(out, perm)
	}
	if len(out) == 0 {
		return nil, errf("MissingParameter", "No IpPermissions given (the emulator does not support the legacy CidrIp/FromPort form)")
	}
	return out, nil
}

func (s *Server) authorizeIngress(req *request) (header, *apiError) {
	r := req.region
	g, err := r.findGroup(req.p)
	if err != nil {
		return nil, err
	}
	perms, err := r.parsePerms(req.p)
	if err != nil {
		return nil, err
	}
	// Reject duplicates before changing anything, as AWS does.
	for _, np := range perms {
		for _, op := range g.ingress {
			if op.key() != np.key() {
				continue
			}
			for _, nr := range np.ranges {
				for _, or := range op.ranges {
					if nr.cidr == or.cidr {
						return nil, errf("InvalidPermission.Duplicate", "the specified rule \"peer: %s, %s, ALLOW\" already exists", nr.cidr, np.proto)
					}
				}
			}
			for _, ng := range np.groups {
				if contains(op.groups, ng) {
					return nil, errf("InvalidPermission.Duplicate", "the specified rule \"peer: %s, %s, ALLOW\" already exists", ng, np.proto)
				}
			}
		}
	}
	for _, np := range perms {
		merged := false
		for i := range g.ingress {
			if g.ingress[i].key() == np.key() {
				g.ingress[i].ranges = append(g.ingress[i].ranges, np.ranges...)
				g.ingress[i].groups = append(g.ingress[i].groups, np.groups...)
				merged = true
				break
			}
		}
		if !merged {
			g.ingress = append(g.ingress, np)
		}
	}
	return okResponse(), nil
}

func (s *Server) revokeIngress(req *request) (header, *apiError) {
	r := req.region
	g, err := r.findGroup(req.p)
	if err != nil {
		return nil, err
	}
	perms, err := r.parsePerms(req.p)
	if err != nil {
		return nil, err
	}
	for _, np := range perms {
		for i := range g.ingress {
			op := &g.ingress[i]
			if op.key() != np.key() {
				continue
			}
			var keep []ipRange
			for _, or := range op.ranges {
				drop := false
				for _, nr := range np.ranges {
					drop = drop || nr.cidr == or.cidr
				}
				if !drop {
					keep = append(keep, or)
				}
			}
			op.ranges = keep
			var keepG []string
			for _, og := range op.groups {
				if !contains(np.groups, og) {
					keepG = append(keepG, og)
				}
			}
			op.groups = keepG
		}
	}
	var kept []ipPerm
	for _, op := range g.ingress {
		if len(op.ranges)+len(op.groups) > 0 {
			kept = append(kept, op)
		}
	}
	g.ingress = kept
	return okResponse(), nil
}

func (s *Server) describeSecurityGroups(req *request) (header, *apiError) {
	r := req.region
	ids, names := req.p.list("GroupId"), req.p.list("GroupName")
	for _, id := range ids {
		if _, err := r.group(id); err != nil {
			return nil, err
		}
	}
	for _, n := range names {
		found := false
		for _, g := range r.groups {
			found = found || g.name == n
		}
		if !found {
			return nil, errf("InvalidGroup.NotFound", "The security group '%s' does not exist in default VPC", n)
		}
	}
	var items []secGroupXML
	for _, g := range sortedBySeq(r.groups, func(g *secGroup) int64 { return g.seq }) {
		if len(ids) > 0 && !contains(ids, g.id) || len(names) > 0 && !contains(names, g.name) {
			continue
		}
		ok, err := matchFilters(req.p.filters(), g.tags, func(f string) ([]string, bool) {
			switch f {
			case "group-id":
				return one(g.id), true
			case "group-name":
				return one(g.name), true
			case "description":
				return one(g.desc), true
			case "vpc-id":
				return one(g.vpcID), true
			case "owner-id":
				return one(s.account), true
			case "ip-permission.cidr":
				var v []string
				for _, p := range g.ingress {
					for _, rg := range p.ranges {
						v = append(v, rg.cidr)
					}
				}
				return v, true
			case "ip-permission.from-port", "ip-permission.to-port":
				var v []string
				for _, p := range g.ingress {
					if p.ports {
						if f == "ip-permission.from-port" {
							v = append(v, strconv.Itoa(p.from))
						} else {
							v = append(v, strconv.Itoa(p.to))
						}
					}
				}
				return v, true
			}
			return nil, false
		})
		if err != nil {
			return nil, err
		}
		if ok {
			items = append(items, secGroupXML{Owner: s.account, ID: g.id, Name: g.name, Desc: g.desc, VpcID: g.vpcID,
				ARN:     "arn:aws:ec2:" + r.name + ":" + s.account + ":security-group/" + g.id,
				Ingress: s.permsXML(g.ingress), Egress: s.permsXML(g.egress), Tags: tagList(g.tags)})
		}
	}
	pg, next, err := page(req.p, items, 5, 1000)
	if err != nil {
		return nil, err
	}
	return &struct {
		Envelope
		Groups []secGroupXML `xml:"securityGroupInfo>item"`
		Next   string        `xml:"nextToken,omitempty"`
	}{Groups: pg, Next: next}, nil
}

func (s *Server) deleteSecurityGroup(req *request) (header, *apiError) {
	r := req.region
	g, err := r.findGroup(req.p)
	if err != nil {
		return nil, err
	}
	if g.isDefault {
		return nil, errf("CannotDelete", "the specified group: \"%s\" name: \"default\" cannot be deleted by a user", g.id)
	}
	for _, in := range r.instances {
		if in.state != "terminated" && contains(in.groups, g.id) {
			return nil, errf("DependencyViolation", "resource %s has a dependent object", g.id)
		}
	}
	for _, og := range r.groups {
		if og.id == g.id {
			continue
		}
		for _, p := range og.ingress {
			if contains(p.groups, g.id) {
				return nil, errf("DependencyViolation", "resource %s has a dependent object (referenced by %s)", g.id, og.id)
			}
		}
	}
	delete(r.groups, g.id)
	return &struct {
		Envelope
		Return  bool   `xml:"return"`
		GroupID string `xml:"groupId"`
	}{Return: true, GroupID: g.id}, nil
}

// --- tags ---

func (s *Server) createTags(req *request) (header, *apiError) {
	r := req.region
	ids := req.p.list("ResourceId")
	tags := req.p.tags("Tag")
	if len(ids) == 0 {
		return nil, errf("MissingParameter", "The request must contain the parameter resourceIdSet")
	}
	if len(tags) == 0 {
		return nil, errf("MissingParameter", "The request must contain the parameter tagSet")
	}
	var maps []map[string]string
	for _, id := range ids {
		m, _, err := r.tagsOf(id)
		if err != nil {
			return nil, err
		}
		maps = append(maps, m)
	}
	for _, t := range tags {
		if t.key == "" || strings.HasPrefix(strings.ToLower(t.key), "aws:") {
			return nil, errf("InvalidParameterValue", "Tag key '%s' is invalid (empty or aws: prefix)", t.key)
		}
	}
	for _, m := range maps {
		n := len(m)
		for _, t := range tags {
			if _, ok := m[t.key]; !ok {
				n++
			}
		}
		if n > 50 {
			return nil, errf("TagLimitExceeded", "The maximum number of tags (50) for a resource has been reached.")
		}
	}
	for _, m := range maps {
		for _, t := range tags {
			m[t.key] = t.value
		}
	}
	s.tagsChanged(r, ids)
	return okResponse(), nil
}

func (s *Server) deleteTags(req *request) (header, *apiError) {
	r := req.region
	ids := req.p.list("ResourceId")
	tags := req.p.tags("Tag")
	var maps []map[string]string
	for _, id := range ids {
		m, _, err := r.tagsOf(id)
		if err != nil {
			return nil, err
		}
		maps = append(maps, m)
	}
	for _, m := range maps {
		if len(tags) == 0 {
			for k := range m {
				delete(m, k)
			}
		}
		for _, t := range tags {
			// A tag with a value only deletes when the value matches, as on AWS.
			if v, ok := m[t.key]; ok && (!req.p.has(tagValueKey(req.p, t.key)) || v == t.value) {
				delete(m, t.key)
			}
		}
	}
	s.tagsChanged(r, ids)
	return okResponse(), nil
}

// tagValueKey finds the Tag.N.Value parameter belonging to key, or "".
func tagValueKey(p params, key string) string {
	for i := 1; i <= p.count("Tag"); i++ {
		pre := "Tag." + strconv.Itoa(i)
		if p.str(pre+".Key") == key {
			return pre + ".Value"
		}
	}
	return ""
}

type tagDescXML struct {
	ResourceID   string `xml:"resourceId"`
	ResourceType string `xml:"resourceType"`
	Key          string `xml:"key"`
	Value        string `xml:"value"`
}

func (s *Server) describeTags(req *request) (header, *apiError) {
	r := req.region
	type res struct {
		id, typ string
		tags    map[string]string
		seq     int64
	}
	var all []res
	for _, in := range r.instances {
		if !r.expired(in) {
			all = append(all, res{in.id, "instance", in.tags, in.seq})
		}
	}
	for _, im := range r.images {
		if im.owner == s.account {
			all = append(all, res{im.id, "image", im.tags, im.seq})
		}
	}
	for _, sn := range r.snapshots {
		all = append(all, res{sn.id, "snapshot", sn.tags, sn.seq})
	}
	for _, g := range r.groups {
		all = append(all, res{g.id, "security-group", g.tags, g.seq})
	}
	for _, v := range r.volumes {
		all = append(all, res{v.id, "volume", v.tags, v.seq})
	}
	for _, k := range r.keys {
		all = append(all, res{k.id, "key-pair", k.tags, k.seq})
	}
	for _, sn := range r.subnets {
		all = append(all, res{sn.id, "subnet", sn.tags, sn.seq})
	}
	for _, v := range r.vpcs {
		all = append(all, res{v.id, "vpc", v.tags, v.seq})
	}
	sort.Slice(all, func(i, j int) bool { return all[i].seq < all[j].seq })
	var items []tagDescXML
	fs := req.p.filters()
	for _, rs := range all {
		keys := make([]string, 0, len(rs.tags))
		for k := range rs.tags {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			v := rs.tags[k]
			ok, err := matchFilters(fs, nil, func(f string) ([]string, bool) {
				switch f {
				case "resource-id":
					return one(rs.id), true
				case "resource-type":
					return one(rs.typ), true
				case "key":
					return one(k), true
				case "value":
					return one(v), true
				}
				return nil, false
			})
			if err != nil {
				return nil, err
			}
			if ok {
				items = append(items, tagDescXML{ResourceID: rs.id, ResourceType: rs.typ, Key: k, Value: v})
			}
		}
	}
	pg, next, err := page(req.p, items, 5, 1000)
	if err != nil {
		return nil, err
	}
	return &struct {
		Envelope
		Tags []tagDescXML `xml:"tagSet>item"`
		Next string       `xml:"nextToken,omitempty"`
	}{Tags: pg, Next: next}, nil
}

func (s *Server) tagsChanged(r *region, ids []string) {
	for _, id := range ids {
		if in := r.instances[id]; in != nil {
			s.pushTags(in)
		}
	}
}
