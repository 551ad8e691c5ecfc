package ec2emu

import (
	"context"
	"encoding/base64"
	"regexp"
	"strconv"
	"strings"
	"time"
)

var stateCodes = map[string]int{"pending": 0, "running": 16, "shutting-down": 32, "terminated": 48, "stopping": 64, "stopped": 80}

var reInstanceType = regexp.MustCompile(`^[a-z][a-z0-9-]*\.[a-z0-9]+$`)

type stateXML struct {
	Code int    `xml:"code"`
	Name string `xml:"name"`
}

type reasonXML struct {
	Code    string `xml:"code"`
	Message string `xml:"message"`
}

type groupXML struct {
	ID   string `xml:"groupId"`
	Name string `xml:"groupName"`
}

type instEBSXML struct {
	VolumeID     string `xml:"volumeId"`
	Status       string `xml:"status"`
	AttachTime   string `xml:"attachTime"`
	DeleteOnTerm bool   `xml:"deleteOnTermination"`
}

type instBDMXML struct {
	Device string     `xml:"deviceName"`
	EBS    instEBSXML `xml:"ebs"`
}

type eniXML struct {
	ID         string     `xml:"networkInterfaceId"`
	SubnetID   string     `xml:"subnetId"`
	VpcID      string     `xml:"vpcId"`
	Owner      string     `xml:"ownerId"`
	Status     string     `xml:"status"`
	MAC        string     `xml:"macAddress"`
	PrivateIP  string     `xml:"privateIpAddress"`
	PrivateDNS string     `xml:"privateDnsName"`
	SrcDst     bool       `xml:"sourceDestCheck"`
	Groups     []groupXML `xml:"groupSet>item"`
	Attachment struct {
		ID     string `xml:"attachmentId"`
		Index  int    `xml:"deviceIndex"`
		Status string `xml:"status"`
	} `xml:"attachment"`
	Association *struct {
		PublicIP string `xml:"publicIp"`
		Owner    string `xml:"ipOwnerId"`
	} `xml:"association,omitempty"`
}

type metaXML struct {
	State    string `xml:"state"`
	Tokens   string `xml:"httpTokens"`
	HopLimit int    `xml:"httpPutResponseHopLimit"`
	Endpoint string `xml:"httpEndpoint"`
	Tags     string `xml:"instanceMetadataTags"`
}

type iamXML struct {
	ARN string `xml:"arn"`
	ID  string `xml:"id"`
}

type instanceXML struct {
	ID              string       `xml:"instanceId"`
	ImageID         string       `xml:"imageId"`
	State           stateXML     `xml:"instanceState"`
	PrivateDNS      string       `xml:"privateDnsName"`
	DNS             string       `xml:"dnsName"`
	Reason          string       `xml:"reason"`
	KeyName         string       `xml:"keyName,omitempty"`
	LaunchIndex     int          `xml:"amiLaunchIndex"`
	Type            string       `xml:"instanceType"`
	LaunchTime      string       `xml:"launchTime"`
	AZ              string       `xml:"placement>availabilityZone"`
	Tenancy         string       `xml:"placement>tenancy"`
	Monitoring      string       `xml:"monitoring>state"`
	SubnetID        string       `xml:"subnetId"`
	VpcID           string       `xml:"vpcId"`
	PrivateIP       string       `xml:"privateIpAddress"`
	PublicIP        string       `xml:"ipAddress,omitempty"`
	SrcDst          bool         `xml:"sourceDestCheck"`
	Groups          []groupXML   `xml:"groupSet>item"`
	StateReason     *reasonXML   `xml:"stateReason,omitempty"`
	Arch            string       `xml:"architecture"`
	RootType        string       `xml:"rootDeviceType"`
	RootDevice      string       `xml:"rootDeviceName"`
	BDMs            []instBDMXML `xml:"blockDeviceMapping>item"`
	Virt            string       `xml:"virtualizationType"`
	ClientToken     string       `xml:"clientToken,omitempty"`
	Tags            []tagXML     `xml:"tagSet>item"`
	Hypervisor      string       `xml:"hypervisor"`
	ENIs            []eniXML     `xml:"networkInterfaceSet>item"`
	IAM             *iamXML      `xml:"iamInstanceProfile,omitempty"`
	EBSOptimized    bool         `xml:"ebsOptimized"`
	ENASupport      bool         `xml:"enaSupport"`
	Metadata        metaXML      `xml:"metadataOptions"`
	PlatformDetails string       `xml:"platformDetails"`
}

func (r *region) privateDNS(ip string) string {
	if ip == "" {
		return ""
	}
	host := "ip-" + strings.ReplaceAll(ip, ".", "-")
	if r.name == "us-east-1" {
		return host + ".ec2.internal"
	}
	return host + "." + r.name + ".compute.internal"
}

func (s *Server) instanceXML(r *region, in *instance) instanceXML {
	x := instanceXML{
		ID: in.id, ImageID: in.imageID, State: stateXML{Code: stateCodes[in.state], Name: in.state},
		Reason: in.reason, KeyName: in.keyName, LaunchIndex: in.launchIndex, Type: in.instanceType,
		LaunchTime: fmtTime(in.launched), AZ: in.az, Tenancy: "default", Monitoring: "disabled",
		Arch: in.arch, RootType: "ebs", RootDevice: in.rootDevice, Virt: "hvm", ClientToken: in.clientToken,
		Tags: tagList(in.tags), Hypervisor: "xen", ENASupport: true, PlatformDetails: "Linux/UNIX",
		SrcDst: true,
		Metadata: metaXML{State: "applied", Tokens: in.httpTokens, HopLimit: in.hopLimit,
			Endpoint: in.httpEndpoint, Tags: in.metadataTags},
	}
	if in.state != "terminated" {
		x.PrivateDNS = r.privateDNS(in.privateIP)
		x.SubnetID, x.VpcID, x.PrivateIP, x.PublicIP = in.subnetID, in.vpcID, in.privateIP, in.publicIP
		for _, gid := range in.groups {
			name := ""
			if g := r.groups[gid]; g != nil {
				name = g.name
			}
			x.Groups = append(x.Groups, groupXML{ID: gid, Name: name})
		}
		for _, b := range in.bdms {
			x.BDMs = append(x.BDMs, instBDMXML{Device: b.device, EBS: instEBSXML{VolumeID: b.volumeID,
				Status: "attached", AttachTime: fmtTime(b.attached), DeleteOnTerm: b.deleteOnTerm}})
		}
		eni := eniXML{ID: "eni-" + strings.TrimPrefix(in.id, "i-"), SubnetID: in.subnetID, VpcID: in.vpcID,
			Owner: s.account, Status: "in-use", MAC: in.mac, PrivateIP: in.privateIP,
			PrivateDNS: x.PrivateDNS, SrcDst: true, Groups: x.Groups}
		eni.Attachment.ID = "eni-attach-" + strings.TrimPrefix(in.id, "i-")
		eni.Attachment.Status = "attached"
		if in.publicIP != "" {
			eni.Association = &struct {
				PublicIP string `xml:"publicIp"`
				Owner    string `xml:"ipOwnerId"`
			}{PublicIP: in.publicIP, Owner: "amazon"}
		}
		x.ENIs = []eniXML{eni}
	}
	if in.reasonCode != "" {
		x.StateReason = &reasonXML{Code: in.reasonCode, Message: in.reasonMsg}
	}
	if in.iamProfile != "" {
		arn := in.iamProfile
		if !strings.HasPrefix(arn, "arn:") {
			arn = "arn:aws:iam::" + s.account + ":instance-profile/" + in.iamProfile
		}
		x.IAM = &iamXML{ARN: arn, ID: "AIPA" + strings.ToUpper(strings.TrimPrefix(in.id, "i-"))}
	}
	return x
}

// reservationXML groups instances launched by one RunInstances call.
type reservationXML struct {
	ID        string        `xml:"reservationId"`
	Owner     string        `xml:"ownerId"`
	Groups    []groupXML    `xml:"groupSet>item"`
	Instances []instanceXML `xml:"instancesSet>item"`
}

type runResponse struct {
	Envelope
	ID        string        `xml:"reservationId"`
	Owner     string        `xml:"ownerId"`
	Groups    []groupXML    `xml:"groupSet>item"`
	Instances []instanceXML `xml:"instancesSet>item"`
}

func (s *Server) runInstances(req *request) (header, *apiError) {
	r, p := req.region, req.p
	if tok := p.str("ClientToken"); tok != "" {
		if resID, ok := s.tokens["run/"+r.name+"/"+tok]; ok {
			return s.reservation(r, resID), nil
		}
	}
	minC, err := p.integer("MinCount", 0)
	if err != nil {
		return nil, err
	}
	maxC, err := p.integer("MaxCount", 0)
	if err != nil {
		return nil, err
	}
	if !p.has("MinCount") || !p.has("MaxCount") {
		return nil, errf("MissingParameter", "The request must contain the parameters MinCount and MaxCount")
	}
	if minC < 1 || maxC < minC {
		return nil, errf("InvalidParameterValue", "MinCount (%d) and MaxCount (%d) must be >= 1 with MinCount <= MaxCount", minC, maxC)
	}
	if maxC > 20 {
		return nil, errf("InstanceLimitExceeded", "You have requested more instances (%d) than your current instance limit of 20 allows", maxC)
	}
	im, err := r.image(p.str("ImageId"))
	if err != nil {
		return nil, err
	}
	if !s.canLaunch(im) {
		return nil, errf("InvalidAMIID.NotFound", "The image id '[%s]' does not exist", im.id)
	}
	if im.state != "available" {
		return nil, errf("InvalidAMIID.Unavailable", "The image id '[%s]' is not available (state %s)", im.id, im.state)
	}
	itype := p.str("InstanceType")
	if itype == "" {
		itype = "m1.small"
	}
	if !reInstanceType.MatchString(itype) {
		return nil, errf("InvalidParameterValue", "Invalid value '%s' for InstanceType.", itype)
	}
	var key *keyPair
	if kn := p.str("KeyName"); kn != "" {
		if key = r.keys[kn]; key == nil {
			return nil, errf("InvalidKeyPair.NotFound", "The key pair '%s' does not exist", kn)
		}
	}
	var sn *subnet
	if id := p.str("SubnetId"); id != "" {
		if sn = r.subnets[id]; sn == nil {
			return nil, errf("InvalidSubnetID.NotFound", "The subnet ID '%s' does not exist", id)
		}
	} else {
		az := p.str("Placement.AvailabilityZone")
		for _, cand := range sortedBySeq(r.subnets, func(x *subnet) int64 { return x.seq }) {
			if cand.defAZ && (az == "" || cand.az == az) {
				sn = cand
				break
			}
		}
		if sn == nil && az != "" {
			return nil, errf("InvalidParameterValue", "Invalid availability zone: [%s] (no default subnet there)", az)
		}
		if sn == nil {
			return nil, errf("MissingInput", "No subnets found for the default VPC. Please specify a subnet.")
		}
	}
	groups := p.list("SecurityGroupId")
	for _, gid := range groups {
		g, err := r.group(gid)
		if err != nil {
			return nil, err
		}
		if g.vpcID != sn.vpcID {
			return nil, errf("InvalidParameter", "Security group %s and subnet %s belong to different networks.", gid, sn.id)
		}
	}
	for _, gn := range p.list("SecurityGroup") {
		found := ""
		for _, g := range r.groups {
			if g.name == gn && g.vpcID == sn.vpcID {
				found = g.id
			}
		}
		if found == "" {
			return nil, errf("InvalidGroup.NotFound", "The security group '%s' does not exist in VPC '%s'", gn, sn.vpcID)
		}
		groups = append(groups, found)
	}
	if len(groups) == 0 {
		for _, g := range r.groups {
			if g.isDefault && g.vpcID == sn.vpcID {
				groups = []string{g.id}
			}
		}
	}
	var userData []byte
	if ud := p.str("UserData"); ud != "" {
		b, derr := base64.StdEncoding.DecodeString(ud)
		if derr != nil {
			return nil, errf("InvalidParameterValue", "Invalid BASE64 encoding of user data.")
		}
		if len(b) > 16*1024 {
			return nil, errf("InvalidParameterValue", "User data is limited to 16384 bytes")
		}
		userData = b
	}
	sdb := p.str("InstanceInitiatedShutdownBehavior")
	if sdb == "" {
		sdb = "stop"
	}
	if sdb != "stop" && sdb != "terminate" {
		return nil, errf("InvalidParameterValue", "Value (%s) for parameter instanceInitiatedShutdownBehavior is invalid.", sdb)
	}
	tokens, hop := "optional", 1
	if im.imdsSupport == "v2.0" {
		tokens, hop = "required", 2
	}
	if v := p.str("MetadataOptions.HttpTokens"); v != "" {
		if v != "optional" && v != "required" {
			return nil, errf("InvalidParameterValue", "Value (%s) for parameter HttpTokens is invalid.", v)
		}
		tokens = v
	}
	if im.imdsSupport == "v2.0" && tokens == "optional" {
		return nil, errf("InvalidParameterCombination", "The image %s requires IMDSv2 (imds-support v2.0); HttpTokens cannot be optional", im.id)
	}
	if hop, err = p.integer("MetadataOptions.HttpPutResponseHopLimit", hop); err != nil {
		return nil, err
	}
	if hop < 1 || hop > 64 {
		return nil, errf("InvalidParameterValue", "HttpPutResponseHopLimit must be between 1 and 64")
	}
	endpoint := p.str("MetadataOptions.HttpEndpoint")
	if endpoint == "" {
		endpoint = "enabled"
	}
	mdTags := p.str("MetadataOptions.InstanceMetadataTags")
	if mdTags == "" {
		mdTags = "disabled"
	}
	iam := p.str("IamInstanceProfile.Arn")
	if iam == "" {
		iam = p.str("IamInstanceProfile.Name")
	}
	if err := p.validTagSpecs("instance", "volume", "network-interface"); err != nil {
		return nil, err
	}
	bdms, err := instanceBDMs(p, im)
	if err != nil {
		return nil, err
	}
	if sn.available() < maxC {
		if sn.available() < minC {
			return nil, errf("InsufficientFreeAddressesInSubnet", "There are not enough free addresses in subnet '%s' to satisfy the requested number of instances.", sn.id)
		}
		maxC = sn.available()
	}
	if maxC > 1 && p.str("PrivateIpAddress") != "" {
		return nil, errf("InvalidParameterCombination", "Cannot specify PrivateIpAddress with MaxCount > 1")
	}

	resID := s.newID("r")
	instTags := p.tagSpecs("instance")
	volTags := p.tagSpecs("volume")
	for i := 0; i < maxC; i++ {
		ip, err := sn.allocIP(p.str("PrivateIpAddress"))
		if err != nil {
			return nil, err
		}
		in := &instance{
			id: s.newID("i"), reservationID: resID, imageID: im.id, instanceType: itype, subnetID: sn.id,
			vpcID: sn.vpcID, az: sn.az, privateIP: ip, allocatedIP: ip, mac: newMAC(), arch: im.arch, rootDevice: im.rootDevice,
			clientToken: p.str("ClientToken"), iamProfile: iam, shutdownBehavior: sdb, httpTokens: tokens,
			httpEndpoint: endpoint, metadataTags: mdTags, hopLimit: hop, launched: req.now,
			groups: append([]string(nil), groups...), tags: copyTags(instTags), userData: userData,
			launchIndex: i, seq: s.nextSeq(), hidden: s.opts.EventualConsistency,
		}
		if key != nil {
			in.keyName = key.name
		}
		in.setState("pending", req.now)
		if sn.mapPublic && s.opts.Backend == nil {
			in.publicIP = s.allocPublicIP()
		}
		for _, b := range bdms {
			v := &volume{id: s.newID("vol"), snapshotID: b.snapshotID, az: sn.az, state: "in-use", volType: b.volType,
				size: b.size, encrypted: b.encrypted, deleteOnTerm: b.deleteOnTerm, instanceID: in.id,
				device: b.device, created: req.now, tags: copyTags(volTags), seq: s.nextSeq()}
			if v.volType == "gp3" {
				v.iops, v.throughput = 3000, 125
			}
			r.volumes[v.id] = v
			in.bdms = append(in.bdms, instBDM{device: b.device, volumeID: v.id, deleteOnTerm: b.deleteOnTerm, attached: req.now})
		}
		r.instances[in.id] = in
		if s.opts.Backend != nil {
			s.launchOnBackend(r, in, im, sn, key)
		}
	}
	if tok := p.str("ClientToken"); tok != "" {
		s.tokens["run/"+r.name+"/"+tok] = resID
	}
	return s.reservation(r, resID), nil
}

// instanceBDMs merges the image's mappings with RunInstances overrides.
func instanceBDMs(p params, im *image) ([]imgBDM, *apiError) {
	out := append([]imgBDM(nil), im.bdms...)
	for i := 1; i <= p.count("BlockDeviceMapping"); i++ {
		pre := "BlockDeviceMapping." + strconv.Itoa(i)
		dev := p.str(pre + ".DeviceName")
		if dev == "" {
			return nil, errf("InvalidBlockDeviceMapping", "The device name is required for every block device mapping")
		}
		if p.has(pre + ".NoDevice") {
			var kept []imgBDM
			for _, b := range out {
				if b.device != dev {
					kept = append(kept, b)
				}
			}
			out = kept
			continue
		}
		idx := -1
		for j := range out {
			if out[j].device == dev {
				idx = j
			}
		}
		b := imgBDM{device: dev, volType: "gp2", size: 8, deleteOnTerm: true}
		if idx >= 0 {
			b = out[idx]
		}
		if v := p.str(pre + ".Ebs.VolumeSize"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > 16384 {
				return nil, errf("InvalidParameterValue", "Volume size %q is invalid", v)
			}
			if n < b.size {
				return nil, errf("InvalidBlockDeviceMapping", "Volume of size %dGB is smaller than snapshot '%s', expect size >= %dGB", n, b.snapshotID, b.size)
			}
			b.size = n
		}
		if v := p.str(pre + ".Ebs.VolumeType"); v != "" {
			switch v {
			case "gp2", "gp3", "io1", "io2", "st1", "sc1", "standard":
			default:
				return nil, errf("InvalidParameterValue", "Value (%s) for parameter volumeType is invalid.", v)
			}
			b.volType = v
		}
		if v := p.str(pre + ".Ebs.Encrypted"); v != "" {
			enc := strings.EqualFold(v, "true")
			if b.encrypted && !enc {
				return nil, errf("InvalidParameterCombination", "The snapshot of device %s is encrypted; the volume cannot be unencrypted", dev)
			}
			b.encrypted = enc
		}
		if v := p.str(pre + ".Ebs.DeleteOnTermination"); v != "" {
			b.deleteOnTerm = strings.EqualFold(v, "true")
		}
		if v := p.str(pre + ".Ebs.SnapshotId"); v != "" {
			b.snapshotID = v
		}
		if idx >= 0 {
			out[idx] = b
		} else {
			out = append(out, b)
		}
	}
	return out, nil
}

func (s *Server) launchOnBackend(r *region, in *instance, im *image, sn *subnet, key *keyPair) {
	lr := LaunchRequest{
		InstanceID: in.id, ImageID: im.id, ImageRef: im.ref, InstanceType: in.instanceType, PrivateIP: in.privateIP,
		SubnetCIDR: sn.cidr, SubnetID: sn.id, VPCID: sn.vpcID, AccountID: s.account, MAC: in.mac, AZ: in.az, Region: r.name, Tags: copyTags(in.tags),
		UserData: append([]byte(nil), in.userData...), HTTPTokens: in.httpTokens, HopLimit: in.hopLimit,
		IAMInstanceProfile: in.iamProfile, ShutdownBehavior: in.shutdownBehavior,
	}
	if v := r.vpcs[sn.vpcID]; v != nil {
		lr.VPCCIDR = v.cidr
	}
	if key != nil {
		lr.KeyName, lr.KeyPublicKey = key.name, key.publicKey
	}
	be := s.opts.Backend
	s.enqueue(&in.ops, func(ctx context.Context) func() {
		bi, err := be.Launch(ctx, lr)
		return func() {
			if err != nil {
				s.backendError("Launch", in.id, err)
				in.reasonCode, in.reasonMsg = "Server.InternalError", "Server.InternalError: backend launch failed: "+err.Error()
				r.finishTermination(in, s.now())
				return
			}
			in.be = bi
			s.adoptBackendAddrs(in)
		}
	})
}

func (s *Server) adoptBackendAddrs(in *instance) {
	if in.be == nil {
		return
	}
	if ip := in.be.PrivateIP(); ip != "" {
		in.privateIP = ip
	}
	in.publicIP = in.be.PublicIP()
	if in.publicIP == "" {
		in.publicIP = in.privateIP
	}
}

func (s *Server) reservation(r *region, resID string) *runResponse {
	out := &runResponse{ID: resID, Owner: s.account}
	for _, in := range sortedBySeq(r.instances, func(x *instance) int64 { return x.seq }) {
		if in.reservationID != resID {
			continue
		}
		x := s.instanceXML(r, in)
		if out.Groups == nil {
			out.Groups = x.Groups
		}
		out.Instances = append(out.Instances, x)
	}
	return out
}

func (s *Server) instanceField(r *region, in *instance) fieldFunc {
	return func(f string) ([]string, bool) {
		switch f {
		case "instance-id":
			return one(in.id), true
		case "instance-state-name":
			return one(in.state), true
		case "instance-state-code":
			return one(strconv.Itoa(stateCodes[in.state])), true
		case "image-id":
			return one(in.imageID), true
		case "instance-type":
			return one(in.instanceType), true
		case "key-name":
			return one(in.keyName), true
		case "subnet-id":
			return one(in.subnetID), true
		case "vpc-id":
			return one(in.vpcID), true
		case "availability-zone":
			return one(in.az), true
		case "private-ip-address", "network-interface.addresses.private-ip-address":
			return one(in.privateIP), true
		case "ip-address":
			return one(in.publicIP), true
		case "reservation-id":
			return one(in.reservationID), true
		case "client-token":
			return one(in.clientToken), true
		case "architecture":
			return one(in.arch), true
		case "owner-id":
			return one(s.account), true
		case "instance.group-id", "group-id":
			return in.groups, true
		case "instance.group-name", "group-name":
			var names []string
			for _, g := range in.groups {
				if sg := r.groups[g]; sg != nil {
					names = append(names, sg.name)
				}
			}
			return names, true
		case "metadata-options.http-tokens":
			return one(in.httpTokens), true
		case "iam-instance-profile.arn":
			return one(in.iamProfile), true
		}
		return nil, false
	}
}

// visibleInstances settles and returns the region's instances in launch order.
func (r *region) visibleInstances(now time.Time) []*instance {
	var out []*instance
	for _, in := range sortedBySeq(r.instances, func(x *instance) int64 { return x.seq }) {
		if r.expired(in) {
			delete(r.instances, in.id)
			continue
		}
		out = append(out, in)
	}
	return out
}

func (r *region) checkInstanceIDs(ids []string) *apiError {
	var missing []string
	for _, id := range ids {
		if _, err := r.instance(id); err != nil {
			if err.Code != "InvalidInstanceID.NotFound" {
				return err
			}
			missing = append(missing, id)
		}
	}
	if len(missing) == 1 {
		return errf("InvalidInstanceID.NotFound", "The instance ID '%s' does not exist", missing[0])
	}
	if len(missing) > 1 {
		return errf("InvalidInstanceID.NotFound", "The instance IDs '%s' do not exist", strings.Join(missing, ", "))
	}
	return nil
}

func (s *Server) describeInstances(req *request) (header, *apiError) {
	r := req.region
	ids := req.p.list("InstanceId")
	if len(ids) > 0 && req.p.has("MaxResults") {
		return nil, errf("InvalidParameterCombination", "The parameter instancesSet cannot be used with the parameter maxResults")
	}
	if err := r.checkInstanceIDs(ids); err != nil {
		return nil, err
	}
	var matched []*instance
	for _, in := range r.visibleInstances(req.now) {
		if len(ids) > 0 && !contains(ids, in.id) {
			continue
		}
		r.settleInstance(in, req.now)
		ok, err := matchFilters(req.p.filters(), in.tags, s.instanceField(r, in))
		if err != nil {
			return nil, err
		}
		if ok {
			matched = append(matched, in)
		}
	}
	// Paginate by instance, then group into reservations as EC2 does.
	pg, next, err := page(req.p, matched, 5, 1000)
	if err != nil {
		return nil, err
	}
	out := &struct {
		Envelope
		Reservations []reservationXML `xml:"reservationSet>item"`
		Next         string           `xml:"nextToken,omitempty"`
	}{Next: next}
	idx := map[string]int{}
	for _, in := range pg {
		in.polls++
		x := s.instanceXML(r, in)
		i, ok := idx[in.reservationID]
		if !ok {
			i = len(out.Reservations)
			idx[in.reservationID] = i
			out.Reservations = append(out.Reservations, reservationXML{ID: in.reservationID, Owner: s.account, Groups: x.Groups})
		}
		out.Reservations[i].Instances = append(out.Reservations[i].Instances, x)
	}
	return out, nil
}

type statusXML struct {
	Status  string `xml:"status"`
	Details []struct {
		Name   string `xml:"name"`
		Status string `xml:"status"`
	} `xml:"details>item"`
}

type instStatusXML struct {
	ID       string    `xml:"instanceId"`
	AZ       string    `xml:"availabilityZone"`
	State    stateXML  `xml:"instanceState"`
	System   statusXML `xml:"systemStatus"`
	Instance statusXML `xml:"instanceStatus"`
}

func (s *Server) describeInstanceStatus(req *request) (header, *apiError) {
	r := req.region
	ids := req.p.list("InstanceId")
	if err := r.checkInstanceIDs(ids); err != nil {
		return nil, err
	}
	all := req.p.boolean("IncludeAllInstances")
	var items []instStatusXML
	for _, in := range r.visibleInstances(req.now) {
		if len(ids) > 0 && !contains(ids, in.id) {
			continue
		}
		r.settleInstance(in, req.now)
		in.polls++
		if !all && in.state != "running" {
			continue
		}
		ok, err := matchFilters(req.p.filters(), nil, func(f string) ([]string, bool) {
			switch f {
			case "instance-state-name":
				return one(in.state), true
			case "instance-state-code":
				return one(strconv.Itoa(stateCodes[in.state])), true
			case "availability-zone":
				return one(in.az), true
			case "system-status.status", "instance-status.status":
				return one(statusOf(in)), true
			}
			return nil, false
		})
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		st := statusXML{Status: statusOf(in)}
		if st.Status == "ok" {
			st.Details = append(st.Details, struct {
				Name   string `xml:"name"`
				Status string `xml:"status"`
			}{"reachability", "passed"})
		}
		items = append(items, instStatusXML{ID: in.id, AZ: in.az, State: stateXML{Code: stateCodes[in.state], Name: in.state},
			System: st, Instance: st})
	}
	pg, next, err := page(req.p, items, 5, 1000)
	if err != nil {
		return nil, err
	}
	return &struct {
		Envelope
		Statuses []instStatusXML `xml:"instanceStatusSet>item"`
		Next     string          `xml:"nextToken,omitempty"`
	}{Statuses: pg, Next: next}, nil
}

func statusOf(in *instance) string {
	if in.state == "running" {
		return "ok"
	}
	return "not-applicable"
}

type stateChangeXML struct {
	ID       string   `xml:"instanceId"`
	Current  stateXML `xml:"currentState"`
	Previous stateXML `xml:"previousState"`
}

type stateChangeResponse struct {
	Envelope
	Instances []stateChangeXML `xml:"instancesSet>item"`
}

// changeStates validates every id first so a bad id changes nothing.
func (s *Server) changeStates(req *request, apply func(in *instance) *apiError) (header, *apiError) {
	r := req.region
	ids := req.p.list("InstanceId")
	if len(ids) == 0 {
		return nil, errf("MissingParameter", "The request must contain the parameter InstanceId")
	}
	if err := r.checkInstanceIDs(ids); err != nil {
		return nil, err
	}
	for _, id := range ids {
		r.settleInstance(r.instances[id], req.now)
	}
	out := &stateChangeResponse{}
	for _, id := range ids {
		in := r.instances[id]
		prev := in.state
		if err := apply(in); err != nil {
			return nil, err
		}
		out.Instances = append(out.Instances, stateChangeXML{ID: id,
			Current:  stateXML{Code: stateCodes[in.state], Name: in.state},
			Previous: stateXML{Code: stateCodes[prev], Name: prev}})
	}
	return out, nil
}

func (s *Server) stopInstances(req *request) (header, *apiError) {
	r := req.region
	for _, id := range req.p.list("InstanceId") {
		if in := r.instances[id]; in != nil && (in.state == "terminated" || in.state == "shutting-down" || in.state == "pending") {
			return nil, errf("IncorrectInstanceState", "This instance '%s' is not in a state from which it can be stopped.", id)
		}
	}
	return s.changeStates(req, func(in *instance) *apiError {
		if in.state != "running" {
			return nil
		}
		s.stopInstance(r, in, req.now, "User initiated")
		return nil
	})
}

func (s *Server) stopInstance(r *region, in *instance, now time.Time, why string) {
	in.setState("stopping", now)
	in.reason = why + " (" + now.UTC().Format("2006-01-02 15:04:05 MST") + ")"
	in.reasonCode, in.reasonMsg = "Client.UserInitiatedShutdown", "Client.UserInitiatedShutdown: User initiated shutdown"
	if s.opts.Backend != nil {
		s.enqueue(&in.ops, func(ctx context.Context) func() {
			if in.be == nil {
				return nil
			}
			err := in.be.Stop(ctx)
			return func() {
				if err != nil {
					s.backendError("Stop", in.id, err)
				}
			}
		})
	}
}

func (s *Server) startInstances(req *request) (header, *apiError) {
	r := req.region
	for _, id := range req.p.list("InstanceId") {
		if in := r.instances[id]; in != nil && in.state != "stopped" && in.state != "running" && in.state != "pending" {
			return nil, errf("IncorrectInstanceState", "The instance '%s' is not in a state from which it can be started.", id)
		}
	}
	return s.changeStates(req, func(in *instance) *apiError {
		if in.state != "stopped" {
			return nil
		}
		in.setState("pending", req.now)
		in.reason, in.reasonCode, in.reasonMsg = "", "", ""
		if s.opts.Backend == nil {
			if sn := r.subnets[in.subnetID]; sn != nil && sn.mapPublic {
				in.publicIP = s.allocPublicIP()
			}
			return nil
		}
		s.enqueue(&in.ops, func(ctx context.Context) func() {
			if in.be == nil {
				return nil
			}
			err := in.be.Start(ctx)
			return func() {
				if err != nil {
					s.backendError("Start", in.id, err)
				}
				s.adoptBackendAddrs(in)
			}
		})
		return nil
	})
}

func (s *Server) terminateInstances(req *request) (header, *apiError) {
	r := req.region
	return s.changeStates(req, func(in *instance) *apiError {
		if in.state == "terminated" || in.state == "shutting-down" {
			return nil
		}
		s.terminateInstance(r, in, req.now)
		return nil
	})
}

func (s *Server) terminateInstance(r *region, in *instance, now time.Time) {
	in.setState("shutting-down", now)
	if in.reasonCode == "" || in.reasonCode == "Client.UserInitiatedShutdown" {
		in.reasonCode, in.reasonMsg = "Client.UserInitiatedShutdown", "Client.UserInitiatedShutdown: User initiated shutdown"
	}
	in.reason = "User initiated (" + now.UTC().Format("2006-01-02 15:04:05 MST") + ")"
	if s.opts.Backend != nil {
		s.enqueue(&in.ops, func(ctx context.Context) func() {
			if in.be == nil {
				return nil
			}
			err := in.be.Terminate(ctx)
			return func() {
				if err != nil {
					s.backendError("Terminate", in.id, err)
				}
			}
		})
	}
}

// NotifyShutdown tells the emulator that instanceID's guest powered itself off (for example
// the self-terminate deadline in user data). The instance then stops or terminates according
// to its InstanceInitiatedShutdownBehavior. It is a no-op for unknown or non-running instances.
func (s *Server) NotifyShutdown(instanceID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	for _, r := range s.regions {
		in := r.instances[instanceID]
		if in == nil {
			continue
		}
		r.settleInstance(in, now)
		if in.state != "running" {
			return
		}
		if in.shutdownBehavior == "terminate" {
			in.reasonCode, in.reasonMsg = "Client.InstanceInitiatedShutdown", "Client.InstanceInitiatedShutdown: Instance initiated shutdown"
			s.terminateInstance(r, in, now)
			return
		}
		s.stopInstance(r, in, now, "Instance initiated")
		in.reasonCode, in.reasonMsg = "Client.InstanceInitiatedShutdown", "Client.InstanceInitiatedShutdown: Instance initiated shutdown"
		return
	}
}

// pushTags hands an instance's new tag set to a TagUpdater backend; callers hold s.mu.
func (s *Server) pushTags(in *instance) {
	if s.opts.Backend == nil {
		return
	}
	tags := copyTags(in.tags)
	s.enqueue(&in.ops, func(context.Context) func() {
		if tu, ok := in.be.(TagUpdater); ok {
			tu.SetTags(tags)
		}
		return nil
	})
}
