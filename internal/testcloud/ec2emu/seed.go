package ec2emu

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// DefaultImageOwner owns seeded images unless ImageSpec.Owner says otherwise: a stand-in for a
// vendor account, distinct from the caller's.
const DefaultImageOwner = "000000000001"

// ImageSpec describes a source AMI to seed (for example a "debian-12-cis" base).
type ImageSpec struct {
	Region       string            `json:"region"` // "" means Options.DefaultRegion
	ID           string            `json:"id"`     // optional fixed ami-... id
	Name         string            `json:"name"`
	Description  string            `json:"description"`
	Owner        string            `json:"owner"`       // default DefaultImageOwner; the caller's account makes it "self"
	OwnerAlias   string            `json:"owner_alias"` // e.g. "amazon" for Owners=[amazon] lookups
	Architecture string            `json:"architecture"`
	CreationDate time.Time         `json:"creation_date"`
	RootDevice   string            `json:"root_device"` // default /dev/xvda
	VolumeSize   int               `json:"volume_size"` // GiB, default 8
	Encrypted    bool              `json:"encrypted"`
	Tags         map[string]string `json:"tags"`
	Private      bool              `json:"private"` // default public, like vendor AMIs
	ImdsSupport  string            `json:"imds_support"`
	BootMode     string            `json:"boot_mode"`
	State        string            `json:"state"` // default available
	DeprecateAt  time.Time         `json:"deprecate_at"`
	// ImageRef is the backend's reference (rootfs) passed to Backend.Launch as LaunchRequest.ImageRef.
	ImageRef string `json:"image_ref"`
}

// AddImage registers a seed image with its root snapshot and returns its id. Seeded images and
// snapshots never count as leaks.
func (s *Server) AddImage(spec ImageSpec) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rn := spec.Region
	if rn == "" {
		rn = s.opts.DefaultRegion
	}
	r := s.regions[rn]
	if r == nil {
		return "", fmt.Errorf("add image %q: region %q is not served (have %v)", spec.Name, rn, s.opts.Regions)
	}
	if !reAMIName.MatchString(spec.Name) {
		return "", fmt.Errorf("add image: name %q must be 3-128 characters of letters, digits, ()[] ./-'@_", spec.Name)
	}
	id := spec.ID
	if id == "" {
		id = s.newID("ami")
	}
	if !reAMI.MatchString(id) {
		return "", fmt.Errorf("add image %q: id %q is not ami- followed by 8 or 17 hex digits", spec.Name, id)
	}
	if r.images[id] != nil {
		return "", fmt.Errorf("add image %q: id %s already exists in %s", spec.Name, id, rn)
	}
	owner := spec.Owner
	if owner == "" {
		owner = DefaultImageOwner
	}
	arch := spec.Architecture
	if arch == "" {
		arch = "x86_64"
	}
	root := spec.RootDevice
	if root == "" {
		root = "/dev/xvda"
	}
	size := spec.VolumeSize
	if size == 0 {
		size = 8
	}
	created := spec.CreationDate
	if created.IsZero() {
		created = s.now()
	}
	state := spec.State
	if state == "" {
		state = "available"
	}
	sn := &snapshot{id: s.newID("snap"), volumeID: "vol-ffffffff", desc: "seed snapshot for " + spec.Name, state: "completed",
		owner: owner, size: size, encrypted: spec.Encrypted, seeded: true, started: created, since: created,
		tags: map[string]string{}, seq: s.nextSeq(), ref: spec.ImageRef, imageID: id}
	r.snapshots[sn.id] = sn
	im := &image{
		id: id, name: spec.Name, desc: spec.Description, owner: owner, ownerAlias: spec.OwnerAlias, arch: arch,
		rootDevice: root, state: state, imdsSupport: spec.ImdsSupport, ref: spec.ImageRef, virt: "hvm",
		bootMode: spec.BootMode, created: created, since: created, deprecation: spec.DeprecateAt,
		public: !spec.Private, seeded: true, launchUsers: map[string]bool{}, launchOrgs: map[string]bool{},
		launchOUs: map[string]bool{}, tags: copyTags(spec.Tags), seq: s.nextSeq(),
		bdms: []imgBDM{{device: root, snapshotID: sn.id, volType: "gp2", size: size, encrypted: spec.Encrypted, deleteOnTerm: true}},
	}
	r.images[id] = im
	return id, nil
}

// AddSubnet adds a subnet to region's default VPC and returns its id.
func (s *Server) AddSubnet(region string, spec SubnetSpec) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.regions[region]
	if r == nil {
		return "", fmt.Errorf("add subnet: region %q is not served (have %v)", region, s.opts.Regions)
	}
	v := r.defaultVPC()
	if v == nil {
		return "", fmt.Errorf("add subnet: region %s has no default VPC", region)
	}
	return r.addSubnet(v.id, spec, false)
}

// PutParameter seeds an SSM parameter (type String); seeded parameters are not leaks.
func (s *Server) PutParameter(region, name, value string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.regions[region]
	if r == nil {
		return fmt.Errorf("put parameter %s: region %q is not served", name, region)
	}
	r.params[name] = &ssmParam{name: name, typ: "String", value: value, dataType: "text", version: 1,
		modified: s.now(), tags: map[string]string{}, seeded: true, seq: s.nextSeq()}
	return nil
}

// Parameter returns an SSM parameter's plaintext value.
func (s *Server) Parameter(region, name string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r := s.regions[region]; r != nil {
		if p := r.params[name]; p != nil {
			return p.value, true
		}
	}
	return "", false
}

// Network describes a region's default VPC for wiring a backend's bridge.
type Network struct {
	VPCID   string
	VPCCIDR string
	Subnets []SubnetInfo
}

// SubnetInfo is one subnet of Network.
type SubnetInfo struct {
	ID, CIDR, AZ string
	MapPublicIP  bool
}

// DefaultNetwork returns region's default VPC and its subnets.
func (s *Server) DefaultNetwork(region string) (Network, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.regions[region]
	if r == nil {
		return Network{}, false
	}
	v := r.defaultVPC()
	if v == nil {
		return Network{}, false
	}
	n := Network{VPCID: v.id, VPCCIDR: v.cidr}
	for _, sn := range sortedBySeq(r.subnets, func(x *subnet) int64 { return x.seq }) {
		if sn.vpcID == v.id {
			n.Subnets = append(n.Subnets, SubnetInfo{ID: sn.id, CIDR: sn.cidr, AZ: sn.az, MapPublicIP: sn.mapPublic})
		}
	}
	return n, true
}

// InstanceInfo is a read-only view of an instance for test assertions.
type InstanceInfo struct {
	ID, Region, State, ImageID, InstanceType, KeyName string
	PrivateIP, PublicIP, MAC, SubnetID, VpcID, AZ     string
	SecurityGroupIDs                                  []string
	Tags                                              map[string]string
	UserData                                          []byte
	HTTPTokens                                        string
	HopLimit                                          int
	IAMInstanceProfile                                string
	ShutdownBehavior                                  string
	Volumes                                           []VolumeInfo
	// Backend is the backing guest, nil without a backend or before Launch returned.
	Backend BackendInstance
}

// VolumeInfo is one attached EBS volume.
type VolumeInfo struct {
	Device, VolumeID, Type         string
	Size                           int
	Encrypted, DeleteOnTermination bool
}

// Instance returns a view of an instance in any region (without advancing its state).
func (s *Server) Instance(id string) (InstanceInfo, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.regions {
		in := r.instances[id]
		if in == nil {
			continue
		}
		info := InstanceInfo{ID: in.id, Region: r.name, State: in.state, ImageID: in.imageID, InstanceType: in.instanceType,
			KeyName: in.keyName, PrivateIP: in.privateIP, PublicIP: in.publicIP, MAC: in.mac, SubnetID: in.subnetID,
			VpcID: in.vpcID, AZ: in.az, SecurityGroupIDs: append([]string(nil), in.groups...), Tags: copyTags(in.tags),
			UserData: append([]byte(nil), in.userData...), HTTPTokens: in.httpTokens, HopLimit: in.hopLimit,
			IAMInstanceProfile: in.iamProfile, ShutdownBehavior: in.shutdownBehavior, Backend: in.be}
		for _, b := range in.bdms {
			vi := VolumeInfo{Device: b.device, VolumeID: b.volumeID, DeleteOnTermination: b.deleteOnTerm}
			if v := r.volumes[b.volumeID]; v != nil {
				vi.Type, vi.Size, vi.Encrypted = v.volType, v.size, v.encrypted
			}
			info.Volumes = append(info.Volumes, vi)
		}
		return info, true
	}
	return InstanceInfo{}, false
}

// ImageInfo is a read-only view of an image for test assertions.
type ImageInfo struct {
	ID, Region, Name, State, Owner, ImdsSupport, Ref string
	Public                                           bool
	LaunchUsers, LaunchOrgs, LaunchOUs               []string
	Deprecation                                      time.Time
	Tags                                             map[string]string
	SnapshotIDs                                      []string
	SourceImageID, SourceRegion                      string
}

// Image returns a view of an image in region (without advancing its state).
func (s *Server) Image(region, id string) (ImageInfo, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.regions[region]
	if r == nil || r.images[id] == nil {
		return ImageInfo{}, false
	}
	im := r.images[id]
	info := ImageInfo{ID: im.id, Region: r.name, Name: im.name, State: im.state, Owner: im.owner, ImdsSupport: im.imdsSupport,
		Ref: im.ref, Public: im.public, LaunchUsers: sortedKeys(im.launchUsers), LaunchOrgs: sortedKeys(im.launchOrgs),
		LaunchOUs: sortedKeys(im.launchOUs), Deprecation: im.deprecation, Tags: copyTags(im.tags),
		SourceImageID: im.sourceImageID, SourceRegion: im.sourceRegion}
	for _, b := range im.bdms {
		info.SnapshotIDs = append(info.SnapshotIDs, b.snapshotID)
	}
	return info, true
}

// Leak is one resource left behind.
type Leak struct {
	Region string            `json:"region"`
	ID     string            `json:"id"`
	Name   string            `json:"name,omitempty"`
	State  string            `json:"state,omitempty"`
	Tags   map[string]string `json:"tags,omitempty"`
}

// Report lists what is left in the emulator beyond its seed.
type Report struct {
	Instances      []Leak `json:"instances"`       // neither terminated nor shutting-down
	SecurityGroups []Leak `json:"security_groups"` // other than each VPC's default
	KeyPairs       []Leak `json:"key_pairs"`
	Images         []Leak `json:"images"`    // owned by the caller, not seeded
	Snapshots      []Leak `json:"snapshots"` // owned by the caller, not seeded
	Volumes        []Leak `json:"volumes"`   // detached volumes that outlived their instance
	Sessions       []Leak `json:"sessions"`  // Session Manager sessions nobody terminated
	Commands       []Leak `json:"commands"`  // Run Command commands still running
	Objects        []Leak `json:"objects"`   // S3 objects left in a bucket (Name is the bucket)
	// Parameters lists SSM parameters that were not seeded. They are reported but do not make
	// the report non-empty: a published AMI id is an intended output.
	Parameters []Leak `json:"parameters"`
}

// Empty reports whether nothing but SSM parameters is left.
func (r Report) Empty() bool { return r.Count() == 0 }

// Count is the number of leaked resources excluding SSM parameters.
func (r Report) Count() int {
	return len(r.Instances) + len(r.SecurityGroups) + len(r.KeyPairs) + len(r.Images) + len(r.Snapshots) + len(r.Volumes) + len(r.Sessions) + len(r.Commands) + len(r.Objects)
}

// String summarises the report as "instances=1 security_groups=0 ..." followed by the ids.
func (r Report) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "instances=%d security_groups=%d key_pairs=%d images=%d snapshots=%d volumes=%d sessions=%d commands=%d objects=%d parameters=%d",
		len(r.Instances), len(r.SecurityGroups), len(r.KeyPairs), len(r.Images), len(r.Snapshots), len(r.Volumes), len(r.Sessions), len(r.Commands), len(r.Objects), len(r.Parameters))
	for _, l := range [][]Leak{r.Instances, r.SecurityGroups, r.KeyPairs, r.Images, r.Snapshots, r.Volumes, r.Sessions, r.Commands, r.Objects, r.Parameters} {
		for _, x := range l {
			fmt.Fprintf(&b, "\n  %s %s %s %s", x.Region, x.ID, x.Name, x.State)
		}
	}
	return b.String()
}

// Leaks reports resources left behind, settling transitional states first.
func (s *Server) Leaks() Report {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	rep := Report{Instances: []Leak{}, SecurityGroups: []Leak{}, KeyPairs: []Leak{}, Images: []Leak{},
		Snapshots: []Leak{}, Volumes: []Leak{}, Sessions: []Leak{}, Commands: []Leak{}, Objects: []Leak{}, Parameters: []Leak{}}
	names := make([]string, 0, len(s.regions))
	for n := range s.regions {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		r := s.regions[n]
		for _, in := range sortedBySeq(r.instances, func(x *instance) int64 { return x.seq }) {
			// shutting-down is on its way out and needs no further call, so it is not a leak.
			if in.state != "terminated" && in.state != "shutting-down" {
				rep.Instances = append(rep.Instances, Leak{Region: n, ID: in.id, State: in.state, Tags: copyTags(in.tags)})
			}
		}
		for _, g := range sortedBySeq(r.groups, func(x *secGroup) int64 { return x.seq }) {
			if !g.isDefault {
				rep.SecurityGroups = append(rep.SecurityGroups, Leak{Region: n, ID: g.id, Name: g.name, Tags: copyTags(g.tags)})
			}
		}
		for _, k := range sortedBySeq(r.keys, func(x *keyPair) int64 { return x.seq }) {
			rep.KeyPairs = append(rep.KeyPairs, Leak{Region: n, ID: k.id, Name: k.name, Tags: copyTags(k.tags)})
		}
		for _, im := range sortedBySeq(r.images, func(x *image) int64 { return x.seq }) {
			if !im.seeded && im.owner == s.account {
				r.settleImage(im, now)
				rep.Images = append(rep.Images, Leak{Region: n, ID: im.id, Name: im.name, State: im.state, Tags: copyTags(im.tags)})
			}
		}
		for _, sn := range sortedBySeq(r.snapshots, func(x *snapshot) int64 { return x.seq }) {
			if !sn.seeded && sn.owner == s.account {
				rep.Snapshots = append(rep.Snapshots, Leak{Region: n, ID: sn.id, State: sn.state, Tags: copyTags(sn.tags)})
			}
		}
		for _, v := range sortedBySeq(r.volumes, func(x *volume) int64 { return x.seq }) {
			if in := r.instances[v.instanceID]; v.instanceID == "" || in == nil || in.state == "terminated" {
				rep.Volumes = append(rep.Volumes, Leak{Region: n, ID: v.id, State: v.state, Tags: copyTags(v.tags)})
			}
		}
		rep.Sessions = append(rep.Sessions, s.sessionLeaks(n)...)
		rep.Commands = append(rep.Commands, s.commandLeaks(n)...)
		rep.Objects = append(rep.Objects, s.objectLeaks(n)...)
		for _, p := range sortedBySeq(r.params, func(x *ssmParam) int64 { return x.seq }) {
			if !p.seeded {
				rep.Parameters = append(rep.Parameters, Leak{Region: n, ID: p.name, Name: p.name})
			}
		}
	}
	return rep
}
