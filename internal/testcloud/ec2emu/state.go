package ec2emu

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"net"
	"regexp"
	"sort"
	"strings"
	"time"
)

// region holds one region's resources. Every field is guarded by Server.mu.
type region struct {
	s         *Server
	name      string
	vpcs      map[string]*vpc
	subnets   map[string]*subnet
	groups    map[string]*secGroup
	keys      map[string]*keyPair // by name
	instances map[string]*instance
	images    map[string]*image
	snapshots map[string]*snapshot
	volumes   map[string]*volume
	params    map[string]*ssmParam
	// autoscaling groups by name (autoscaling.go), made on first use.
	autoscaling map[string]*asGroup
	secrets     map[string]*smSecret // Secrets Manager, by name
}

func newRegion(s *Server, name string) *region {
	return &region{
		s: s, name: name,
		vpcs: map[string]*vpc{}, subnets: map[string]*subnet{}, groups: map[string]*secGroup{},
		keys: map[string]*keyPair{}, instances: map[string]*instance{}, images: map[string]*image{},
		snapshots: map[string]*snapshot{}, volumes: map[string]*volume{}, params: map[string]*ssmParam{},
		secrets: map[string]*smSecret{},
	}
}

type vpc struct {
	id, cidr  string
	isDefault bool
	tags      map[string]string
	seq       int64
}

type subnet struct {
	id, vpcID, cidr, az string
	mapPublic, defAZ    bool
	tags                map[string]string
	seq                 int64
	base, size          uint32
	used                map[uint32]bool
	seeded              bool
}

type ipRange struct{ cidr, desc string }

type ipPerm struct {
	proto    string
	from, to int
	ports    bool
	ranges   []ipRange
	groups   []string
}

func (p ipPerm) key() string {
	return fmt.Sprintf("%s/%d/%d/%v", p.proto, p.from, p.to, p.ports)
}

type secGroup struct {
	id, name, desc, vpcID string
	isDefault             bool
	tags                  map[string]string
	ingress, egress       []ipPerm
	seq                   int64
}

type keyPair struct {
	id, name, keyType, fingerprint, publicKey string
	created                                   time.Time
	tags                                      map[string]string
	seq                                       int64
}

type instBDM struct {
	device, volumeID string
	deleteOnTerm     bool
	attached         time.Time
}

type instance struct {
	id, reservationID, imageID, instanceType, keyName string
	subnetID, vpcID, az, privateIP, publicIP, mac     string
	allocatedIP                                       string // taken from the subnet; a backend may report another
	arch, rootDevice, clientToken, iamProfile         string
	shutdownBehavior                                  string
	httpTokens, httpEndpoint, metadataTags            string
	hopLimit                                          int
	state                                             string
	since                                             time.Time
	polls                                             int
	reasonCode, reasonMsg, reason                     string
	launched, terminatedAt                            time.Time
	groups                                            []string
	tags                                              map[string]string
	userData                                          []byte
	bdms                                              []instBDM
	launchIndex                                       int
	seq                                               int64
	ops                                               opQueue
	hidden                                            int // calls still answering NotFound
	be                                                BackendInstance
}

type imgBDM struct {
	device, snapshotID, volType string
	size                        int
	encrypted, deleteOnTerm     bool
}

type image struct {
	id, name, desc, owner, ownerAlias, arch, rootDevice string
	state, imdsSupport, ref, virt, bootMode             string
	sourceImageID, sourceRegion, sourceInstanceID       string
	reasonCode, reasonMsg                               string
	created, deprecation, since                         time.Time
	public, seeded                                      bool
	launchUsers, launchOrgs, launchOUs                  map[string]bool
	bdms                                                []imgBDM
	tags                                                map[string]string
	seq                                                 int64
	polls, busy, hidden                                 int
}

type snapshot struct {
	id, volumeID, desc, state, owner, ref string
	size                                  int
	encrypted, seeded                     bool
	started, since                        time.Time
	tags                                  map[string]string
	seq                                   int64
	polls                                 int
	imageID                               string // image whose creation made it, for settling
}

type volume struct {
	id, snapshotID, az, state, volType string
	size, iops, throughput             int
	encrypted, deleteOnTerm            bool
	instanceID, device                 string
	created                            time.Time
	tags                               map[string]string
	seq                                int64
}

// --- VPCs and subnets ---

func (r *region) addVPC(cidr string, isDefault bool, tags map[string]string) string {
	v := &vpc{id: r.s.newID("vpc"), cidr: cidr, isDefault: isDefault, tags: copyTags(tags), seq: r.s.nextSeq()}
	r.vpcs[v.id] = v
	r.addGroup(v.id, "default", "default VPC security group", true, nil)
	return v.id
}

func (r *region) defaultVPC() *vpc {
	for _, v := range r.vpcs {
		if v.isDefault {
			return v
		}
	}
	return nil
}

func (r *region) addSubnet(vpcID string, spec SubnetSpec, seeded bool) (string, error) {
	v := r.vpcs[vpcID]
	if v == nil {
		return "", fmt.Errorf("vpc %s not found in %s", vpcID, r.name)
	}
	_, n, err := net.ParseCIDR(spec.CIDR)
	if err != nil || n.IP.To4() == nil {
		return "", fmt.Errorf("subnet CIDR %q must be an IPv4 CIDR: %v", spec.CIDR, err)
	}
	ones, bits := n.Mask.Size()
	if bits-ones < 3 {
		return "", fmt.Errorf("subnet CIDR %q is too small (need at least /29)", spec.CIDR)
	}
	az := spec.Zone
	if az == "" {
		az = "a"
	}
	if len(az) == 1 {
		az = r.name + az
	}
	sn := &subnet{
		id: r.s.newID("subnet"), vpcID: vpcID, cidr: n.String(), az: az, mapPublic: spec.MapPublicIP,
		defAZ: seeded && v.isDefault, tags: copyTags(spec.Tags), seq: r.s.nextSeq(),
		base: binary.BigEndian.Uint32(n.IP.To4()), size: 1 << uint(bits-ones), used: map[uint32]bool{},
		seeded: seeded,
	}
	r.subnets[sn.id] = sn
	return sn.id, nil
}

// allocIP takes the requested address or the lowest free one; AWS reserves the first four
// and the last address of every subnet.
func (sn *subnet) allocIP(want string) (string, *apiError) {
	if want != "" {
		ip := net.ParseIP(want).To4()
		if ip == nil {
			return "", errf("InvalidParameterValue", "Invalid value '%s' for PrivateIpAddress", want)
		}
		n := binary.BigEndian.Uint32(ip)
		if n < sn.base+4 || n >= sn.base+sn.size-1 {
			return "", errf("InvalidParameterValue", "Address %s does not fall within the subnet's address range %s", want, sn.cidr)
		}
		if sn.used[n] {
			return "", errf("InvalidIPAddress.InUse", "Address %s is in use.", want)
		}
		sn.used[n] = true
		return want, nil
	}
	for n := sn.base + 4; n < sn.base+sn.size-1; n++ {
		if !sn.used[n] {
			sn.used[n] = true
			return u32ip(n), nil
		}
	}
	return "", errf("InsufficientFreeAddressesInSubnet", "There are not enough free addresses in subnet '%s' to satisfy the requested number of instances.", sn.id)
}

func (sn *subnet) freeIP(ip string) {
	if p := net.ParseIP(ip).To4(); p != nil {
		delete(sn.used, binary.BigEndian.Uint32(p))
	}
}

func (sn *subnet) available() int { return int(sn.size) - 5 - len(sn.used) }

func u32ip(n uint32) string {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], n)
	return net.IP(b[:]).String()
}

// allocPublicIP hands out TEST-NET-1 addresses for instances without a backend.
func (s *Server) allocPublicIP() string {
	for i := 10; i < 255; i++ {
		ip := fmt.Sprintf("192.0.2.%d", i)
		if !s.pubIPs[ip] {
			s.pubIPs[ip] = true
			return ip
		}
	}
	return ""
}

func newMAC() string {
	var b [5]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("0e:%02x:%02x:%02x:%02x:%02x", b[0], b[1], b[2], b[3], b[4])
}

// --- security groups ---

func (r *region) addGroup(vpcID, name, desc string, isDefault bool, tags map[string]string) *secGroup {
	g := &secGroup{
		id: r.s.newID("sg"), name: name, desc: desc, vpcID: vpcID, isDefault: isDefault,
		tags: copyTags(tags), seq: r.s.nextSeq(),
		egress: []ipPerm{{proto: "-1", ranges: []ipRange{{cidr: "0.0.0.0/0"}}}},
	}
	r.groups[g.id] = g
	return g
}

// --- lookups with EC2's error codes ---

var (
	reAMI      = regexp.MustCompile(`^ami-[0-9a-f]{8}([0-9a-f]{9})?$`)
	reInstance = regexp.MustCompile(`^i-[0-9a-f]{8}([0-9a-f]{9})?$`)
	reSnapshot = regexp.MustCompile(`^snap-[0-9a-f]{8}([0-9a-f]{9})?$`)
	reGroup    = regexp.MustCompile(`^sg-[0-9a-f]{8}([0-9a-f]{9})?$`)
	reVolume   = regexp.MustCompile(`^vol-[0-9a-f]{8}([0-9a-f]{9})?$`)
)

func (r *region) image(id string) (*image, *apiError) {
	if !reAMI.MatchString(id) {
		return nil, errf("InvalidAMIID.Malformed", "Invalid id: \"%s\" (expecting \"ami-...\")", id)
	}
	im := r.images[id]
	if im == nil || im.hidden > 0 {
		if im != nil && im.hidden > 0 {
			im.hidden--
		}
		return nil, errf("InvalidAMIID.NotFound", "The image id '[%s]' does not exist", id)
	}
	return im, nil
}

func (r *region) instance(id string) (*instance, *apiError) {
	if !reInstance.MatchString(id) {
		return nil, errf("InvalidInstanceID.Malformed", "Invalid id: \"%s\"", id)
	}
	in := r.instances[id]
	if in == nil || r.expired(in) || in.hidden > 0 {
		if in != nil && in.hidden > 0 {
			in.hidden--
		}
		return nil, errf("InvalidInstanceID.NotFound", "The instance ID '%s' does not exist", id)
	}
	return in, nil
}

func (r *region) snapshot(id string) (*snapshot, *apiError) {
	if !reSnapshot.MatchString(id) {
		return nil, errf("InvalidSnapshotID.Malformed", "Invalid id: \"%s\" (expecting \"snap-...\")", id)
	}
	sn := r.snapshots[id]
	if sn == nil {
		return nil, errf("InvalidSnapshot.NotFound", "The snapshot '%s' does not exist.", id)
	}
	return sn, nil
}

func (r *region) group(id string) (*secGroup, *apiError) {
	if !reGroup.MatchString(id) {
		return nil, errf("InvalidGroupId.Malformed", "Invalid id: \"%s\" (expecting \"sg-...\")", id)
	}
	g := r.groups[id]
	if g == nil {
		return nil, errf("InvalidGroup.NotFound", "The security group '%s' does not exist", id)
	}
	return g, nil
}

func (r *region) volume(id string) (*volume, *apiError) {
	if !reVolume.MatchString(id) {
		return nil, errf("InvalidVolumeID.Malformed", "Invalid id: \"%s\" (expecting \"vol-...\")", id)
	}
	v := r.volumes[id]
	if v == nil {
		return nil, errf("InvalidVolume.NotFound", "The volume '%s' does not exist.", id)
	}
	return v, nil
}

// tagsOf finds the tag map of any taggable resource id.
func (r *region) tagsOf(id string) (map[string]string, string, *apiError) {
	switch {
	case strings.HasPrefix(id, "i-"):
		in, err := r.instance(id)
		if err != nil {
			return nil, "", err
		}
		return in.tags, "instance", nil
	case strings.HasPrefix(id, "ami-"):
		im, err := r.image(id)
		if err != nil {
			return nil, "", err
		}
		return im.tags, "image", nil
	case strings.HasPrefix(id, "snap-"):
		sn, err := r.snapshot(id)
		if err != nil {
			return nil, "", err
		}
		return sn.tags, "snapshot", nil
	case strings.HasPrefix(id, "sg-"):
		g, err := r.group(id)
		if err != nil {
			return nil, "", err
		}
		return g.tags, "security-group", nil
	case strings.HasPrefix(id, "vol-"):
		v, err := r.volume(id)
		if err != nil {
			return nil, "", err
		}
		return v.tags, "volume", nil
	case strings.HasPrefix(id, "key-"):
		for _, k := range r.keys {
			if k.id == id {
				return k.tags, "key-pair", nil
			}
		}
		return nil, "", errf("InvalidKeyPair.NotFound", "The key pair '%s' does not exist", id)
	case strings.HasPrefix(id, "subnet-"):
		if sn := r.subnets[id]; sn != nil {
			return sn.tags, "subnet", nil
		}
		return nil, "", errf("InvalidSubnetID.NotFound", "The subnet ID '%s' does not exist", id)
	case strings.HasPrefix(id, "vpc-"):
		if v := r.vpcs[id]; v != nil {
			return v.tags, "vpc", nil
		}
		return nil, "", errf("InvalidVpcID.NotFound", "The vpc ID '%s' does not exist", id)
	}
	return nil, "", errf("InvalidID", "The ID '%s' is not valid", id)
}

// --- state machines ---

func (s *Server) ready(since time.Time, polls int, t *Timing, now time.Time) bool {
	return polls >= t.Polls && now.Sub(since) >= t.Delay
}

func (in *instance) setState(st string, now time.Time) {
	in.state = st
	in.since = now
	in.polls = 0
}

// settleInstance advances a transitional instance whose time has come. Backend work in flight
// holds the state.
func (r *region) settleInstance(in *instance, now time.Time) {
	if in.ops.busy() || !r.s.ready(in.since, in.polls, r.s.opts.InstanceTiming, now) {
		return
	}
	switch in.state {
	case "pending":
		in.setState("running", now)
	case "stopping":
		in.setState("stopped", now)
		r.releasePublicIP(in)
	case "shutting-down":
		r.finishTermination(in, now)
	}
}

func (r *region) releasePublicIP(in *instance) {
	if in.publicIP != "" {
		delete(r.s.pubIPs, in.publicIP)
		in.publicIP = ""
	}
}

func (r *region) finishTermination(in *instance, now time.Time) {
	in.setState("terminated", now)
	in.terminatedAt = now
	r.releasePublicIP(in)
	if sn := r.subnets[in.subnetID]; sn != nil {
		sn.freeIP(in.allocatedIP)
	}
	for i := range in.bdms {
		v := r.volumes[in.bdms[i].volumeID]
		if v == nil {
			continue
		}
		if in.bdms[i].deleteOnTerm {
			delete(r.volumes, v.id)
		} else {
			v.state, v.instanceID, v.device = "available", "", ""
		}
	}
}

// expired reports terminated instances past their retention; they vanish from every answer.
func (r *region) expired(in *instance) bool {
	return in.state == "terminated" && r.s.now().Sub(in.terminatedAt) > r.s.opts.TerminatedRetention
}

func (r *region) settleImage(im *image, now time.Time) {
	if im.state != "pending" || im.busy > 0 || !r.s.ready(im.since, im.polls, r.s.opts.ImageTiming, now) {
		return
	}
	im.state = "available"
	im.since = now
	for _, b := range im.bdms {
		if sn := r.snapshots[b.snapshotID]; sn != nil && sn.state == "pending" {
			sn.state = "completed"
		}
	}
}

func (r *region) settleSnapshot(sn *snapshot, now time.Time) {
	if sn.state != "pending" {
		return
	}
	if im := r.images[sn.imageID]; im != nil && im.busy > 0 {
		return
	}
	if r.s.ready(sn.since, sn.polls, r.s.opts.ImageTiming, now) {
		sn.state = "completed"
	}
}

// --- ordering helpers ---

func sortedBySeq[T any](m map[string]T, seq func(T) int64) []T {
	out := make([]T, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	sort.Slice(out, func(i, j int) bool { return seq(out[i]) < seq(out[j]) })
	return out
}

func copyTags(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
