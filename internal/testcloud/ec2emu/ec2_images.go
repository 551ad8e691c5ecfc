package ec2emu

import (
	"context"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

var reAMIName = regexp.MustCompile(`^[a-zA-Z0-9()\[\] ./\-'@_]{3,128}$`)

type ebsXML struct {
	SnapshotID   string `xml:"snapshotId,omitempty"`
	Size         int    `xml:"volumeSize"`
	DeleteOnTerm bool   `xml:"deleteOnTermination"`
	VolumeType   string `xml:"volumeType"`
	Encrypted    bool   `xml:"encrypted"`
}

type bdmXML struct {
	Device string `xml:"deviceName"`
	EBS    ebsXML `xml:"ebs"`
}

type imageXML struct {
	ID              string     `xml:"imageId"`
	Location        string     `xml:"imageLocation"`
	State           string     `xml:"imageState"`
	Owner           string     `xml:"imageOwnerId"`
	OwnerAlias      string     `xml:"imageOwnerAlias,omitempty"`
	Created         string     `xml:"creationDate"`
	Public          bool       `xml:"isPublic"`
	Arch            string     `xml:"architecture"`
	Type            string     `xml:"imageType"`
	Name            string     `xml:"name"`
	Desc            string     `xml:"description,omitempty"`
	RootType        string     `xml:"rootDeviceType"`
	RootDevice      string     `xml:"rootDeviceName"`
	BDMs            []bdmXML   `xml:"blockDeviceMapping>item"`
	Virt            string     `xml:"virtualizationType"`
	Tags            []tagXML   `xml:"tagSet>item"`
	Hypervisor      string     `xml:"hypervisor"`
	ENA             bool       `xml:"enaSupport"`
	BootMode        string     `xml:"bootMode,omitempty"`
	IMDS            string     `xml:"imdsSupport,omitempty"`
	Deprecation     string     `xml:"deprecationTime,omitempty"`
	PlatformDetails string     `xml:"platformDetails"`
	UsageOperation  string     `xml:"usageOperation"`
	SourceImageID   string     `xml:"sourceImageId,omitempty"`
	SourceRegion    string     `xml:"sourceImageRegion,omitempty"`
	SourceInstance  string     `xml:"sourceInstanceId,omitempty"`
	StateReason     *reasonXML `xml:"stateReason,omitempty"`
}

func (s *Server) imageXML(im *image) imageXML {
	x := imageXML{
		ID: im.id, Location: im.owner + "/" + im.name, State: im.state, Owner: im.owner, OwnerAlias: im.ownerAlias,
		Created: fmtTime(im.created), Public: im.public, Arch: im.arch, Type: "machine", Name: im.name, Desc: im.desc,
		RootType: "ebs", RootDevice: im.rootDevice, Virt: im.virt, Tags: tagList(im.tags), Hypervisor: "xen",
		ENA: true, BootMode: im.bootMode, IMDS: im.imdsSupport, PlatformDetails: "Linux/UNIX", UsageOperation: "RunInstances",
		SourceImageID: im.sourceImageID, SourceRegion: im.sourceRegion, SourceInstance: im.sourceInstanceID,
	}
	if !im.deprecation.IsZero() {
		x.Deprecation = fmtTime(im.deprecation)
	}
	if im.reasonCode != "" {
		x.StateReason = &reasonXML{Code: im.reasonCode, Message: im.reasonMsg}
	}
	for _, b := range im.bdms {
		x.BDMs = append(x.BDMs, bdmXML{Device: b.device, EBS: ebsXML{SnapshotID: b.snapshotID, Size: b.size,
			DeleteOnTerm: b.deleteOnTerm, VolumeType: b.volType, Encrypted: b.encrypted}})
	}
	// Only the owner sees the tags of an image, as on AWS.
	if im.owner != s.account {
		x.Tags = nil
	}
	return x
}

func (s *Server) canLaunch(im *image) bool {
	return im.owner == s.account || im.public || im.launchUsers[s.account]
}

func (s *Server) imageField(im *image) fieldFunc {
	return func(f string) ([]string, bool) {
		switch f {
		case "name":
			return one(im.name), true
		case "image-id":
			return one(im.id), true
		case "owner-id":
			return one(im.owner), true
		case "owner-alias":
			return one(im.ownerAlias), true
		case "state":
			return one(im.state), true
		case "architecture":
			return one(im.arch), true
		case "description":
			return one(im.desc), true
		case "is-public":
			return one(boolStr(im.public)), true
		case "image-type":
			return one("machine"), true
		case "root-device-type":
			return one("ebs"), true
		case "root-device-name":
			return one(im.rootDevice), true
		case "virtualization-type":
			return one(im.virt), true
		case "hypervisor":
			return one("xen"), true
		case "ena-support":
			return one("true"), true
		case "imds-support":
			return one(im.imdsSupport), true
		case "creation-date":
			return one(fmtTime(im.created)), true
		case "source-image-id":
			return one(im.sourceImageID), true
		case "source-instance-id":
			return one(im.sourceInstanceID), true
		case "block-device-mapping.snapshot-id", "block-device-mapping.device-name",
			"block-device-mapping.volume-type", "block-device-mapping.volume-size", "block-device-mapping.encrypted":
			var v []string
			for _, b := range im.bdms {
				switch f {
				case "block-device-mapping.snapshot-id":
					v = append(v, b.snapshotID)
				case "block-device-mapping.device-name":
					v = append(v, b.device)
				case "block-device-mapping.volume-type":
					v = append(v, b.volType)
				case "block-device-mapping.volume-size":
					v = append(v, strconv.Itoa(b.size))
				default:
					v = append(v, boolStr(b.encrypted))
				}
			}
			return v, true
		}
		return nil, false
	}
}

func (s *Server) describeImages(req *request) (header, *apiError) {
	r, p := req.region, req.p
	ids := p.list("ImageId")
	owners := p.list("Owner")
	execBy := p.list("ExecutableBy")
	if len(ids) > 0 && p.has("MaxResults") {
		return nil, errf("InvalidParameterCombination", "The parameter imageIdsSet cannot be used with the parameter maxResults")
	}
	var missing []string
	for _, id := range ids {
		if _, err := r.image(id); err != nil {
			if err.Code == "InvalidAMIID.Malformed" {
				return nil, err
			}
			missing = append(missing, id)
		}
	}
	if len(missing) > 0 {
		return nil, errf("InvalidAMIID.NotFound", "The image id '[%s]' does not exist", strings.Join(missing, ", "))
	}
	// Deprecated images of other owners are hidden unless asked for or named by id, as on AWS.
	showDeprecated := p.boolean("IncludeDeprecated")
	var items []*image
	for _, im := range sortedBySeq(r.images, func(x *image) int64 { return x.seq }) {
		if len(ids) > 0 && !contains(ids, im.id) {
			continue
		}
		if len(ids) == 0 && !s.canLaunch(im) {
			continue
		}
		if len(ids) == 0 && !showDeprecated && !im.deprecation.IsZero() && !im.deprecation.After(req.now) && im.owner != s.account {
			continue
		}
		if len(owners) > 0 {
			ok := false
			for _, o := range owners {
				switch o {
				case "self":
					ok = ok || im.owner == s.account
				default:
					ok = ok || im.owner == o || (im.ownerAlias != "" && im.ownerAlias == o)
				}
			}
			if !ok {
				continue
			}
		}
		if len(execBy) > 0 {
			ok := false
			for _, e := range execBy {
				switch e {
				case "all":
					ok = ok || im.public
				case "self":
					ok = ok || s.canLaunch(im)
				default:
					ok = ok || im.public || im.launchUsers[e] || im.owner == e
				}
			}
			if !ok {
				continue
			}
		}
		r.settleImage(im, req.now)
		tags := im.tags
		if im.owner != s.account {
			tags = nil
		}
		ok, err := matchFilters(p.filters(), tags, s.imageField(im))
		if err != nil {
			return nil, err
		}
		if ok {
			items = append(items, im)
		}
	}
	pg, next, err := page(p, items, 1, 1000)
	if err != nil {
		return nil, err
	}
	out := &struct {
		Envelope
		Images []imageXML `xml:"imagesSet>item"`
		Next   string     `xml:"nextToken,omitempty"`
	}{Next: next}
	for _, im := range pg {
		im.polls++
		out.Images = append(out.Images, s.imageXML(im))
	}
	return out, nil
}

func (r *region) nameTaken(name string) bool {
	for _, im := range r.images {
		if im.owner == r.s.account && im.name == name {
			return true
		}
	}
	return false
}

func (s *Server) createImage(req *request) (header, *apiError) {
	r, p := req.region, req.p
	in, err := r.instance(p.str("InstanceId"))
	if err != nil {
		return nil, err
	}
	r.settleInstance(in, req.now)
	name := p.str("Name")
	if name == "" {
		return nil, errf("MissingParameter", "The request must contain the parameter name")
	}
	if !reAMIName.MatchString(name) {
		return nil, errf("InvalidAMIName.Malformed", "AMI names must be between 3 and 128 characters long, and may contain letters, numbers, '(', ')', '.', '-', '/' and '_'")
	}
	if r.nameTaken(name) {
		return nil, errf("InvalidAMIName.Duplicate", "AMI name %s is already in use by AMI", name)
	}
	if in.state != "running" && in.state != "stopped" {
		return nil, errf("IncorrectState", "Instance '%s' is not in a state from which it can be imaged (state %s)", in.id, in.state)
	}
	if err := p.validTagSpecs("image", "snapshot"); err != nil {
		return nil, err
	}
	src := r.images[in.imageID]
	im := &image{
		id: s.newID("ami"), name: name, desc: p.str("Description"), owner: s.account, arch: in.arch,
		rootDevice: in.rootDevice, state: "pending", virt: "hvm", sourceInstanceID: in.id, created: req.now,
		since: req.now, launchUsers: map[string]bool{}, launchOrgs: map[string]bool{}, launchOUs: map[string]bool{},
		tags: p.tagSpecs("image"), seq: s.nextSeq(), hidden: s.opts.EventualConsistency,
	}
	if src != nil {
		im.bootMode, im.imdsSupport = src.bootMode, src.imdsSupport
	}
	snapTags := p.tagSpecs("snapshot")
	for _, b := range in.bdms {
		v := r.volumes[b.volumeID]
		if v == nil {
			continue
		}
		sn := &snapshot{id: s.newID("snap"), volumeID: v.id, desc: "Created by CreateImage(" + in.id + ") for " + im.id,
			state: "pending", owner: s.account, size: v.size, encrypted: v.encrypted, started: req.now, since: req.now,
			tags: copyTags(snapTags), seq: s.nextSeq(), imageID: im.id}
		r.snapshots[sn.id] = sn
		im.bdms = append(im.bdms, imgBDM{device: b.device, snapshotID: sn.id, volType: v.volType, size: v.size,
			encrypted: v.encrypted, deleteOnTerm: b.deleteOnTerm})
	}
	r.images[im.id] = im
	if s.opts.Backend != nil && in.be != nil {
		im.busy++
		s.enqueue(&in.ops, func(ctx context.Context) func() {
			ref, err := in.be.Snapshot(ctx)
			return func() {
				im.busy--
				if err != nil {
					s.backendError("Snapshot", in.id, err)
					im.state, im.reasonCode, im.reasonMsg = "failed", "Server.InternalError", "Server.InternalError: snapshot failed: "+err.Error()
					return
				}
				im.ref = ref
				for _, b := range im.bdms {
					if sn := r.snapshots[b.snapshotID]; sn != nil && b.device == im.rootDevice {
						sn.ref = ref
					}
				}
			}
		})
	}
	return &struct {
		Envelope
		ImageID string `xml:"imageId"`
	}{ImageID: im.id}, nil
}

func (s *Server) copyImage(req *request) (header, *apiError) {
	dst, p := req.region, req.p
	if tok := p.str("ClientToken"); tok != "" {
		if id, ok := s.tokens["copy/"+dst.name+"/"+tok]; ok {
			return &struct {
				Envelope
				ImageID string `xml:"imageId"`
			}{ImageID: id}, nil
		}
	}
	srcRegion := s.regions[p.str("SourceRegion")]
	if srcRegion == nil {
		return nil, errf("InvalidParameterValue", "Invalid SourceRegion %q", p.str("SourceRegion"))
	}
	src, err := srcRegion.image(p.str("SourceImageId"))
	if err != nil {
		return nil, err
	}
	if !s.canLaunch(src) {
		return nil, errf("InvalidAMIID.NotFound", "The image id '[%s]' does not exist", src.id)
	}
	srcRegion.settleImage(src, req.now)
	if src.state != "available" {
		return nil, errf("IncorrectState", "Image %s is not in a state from which it can be copied (state %s)", src.id, src.state)
	}
	name := p.str("Name")
	if name == "" {
		return nil, errf("MissingParameter", "The request must contain the parameter Name")
	}
	if !reAMIName.MatchString(name) {
		return nil, errf("InvalidAMIName.Malformed", "AMI name %q is malformed", name)
	}
	if dst.nameTaken(name) {
		return nil, errf("InvalidAMIName.Duplicate", "AMI name %s is already in use by AMI", name)
	}
	if err := p.validTagSpecs("image"); err != nil {
		return nil, err
	}
	encrypted := p.boolean("Encrypted")
	im := &image{
		id: s.newID("ami"), name: name, desc: p.str("Description"), owner: s.account, arch: src.arch,
		rootDevice: src.rootDevice, state: "pending", virt: src.virt, bootMode: src.bootMode, imdsSupport: src.imdsSupport,
		ref: src.ref, sourceImageID: src.id, sourceRegion: srcRegion.name, created: req.now, since: req.now,
		launchUsers: map[string]bool{}, launchOrgs: map[string]bool{}, launchOUs: map[string]bool{},
		tags: p.tagSpecs("image"), seq: s.nextSeq(), hidden: s.opts.EventualConsistency,
	}
	if p.boolean("CopyImageTags") && src.owner == s.account {
		for k, v := range src.tags {
			if _, set := im.tags[k]; !set {
				im.tags[k] = v
			}
		}
	}
	for _, b := range src.bdms {
		sn := &snapshot{id: s.newID("snap"), volumeID: "vol-ffffffff", desc: "Copied for DestinationAmi " + im.id + " from SourceAmi " + src.id,
			state: "pending", owner: s.account, size: b.size, encrypted: b.encrypted || encrypted, started: req.now, since: req.now,
			tags: map[string]string{}, seq: s.nextSeq(), imageID: im.id}
		if b.device == src.rootDevice {
			sn.ref = src.ref
		}
		dst.snapshots[sn.id] = sn
		nb := b
		nb.snapshotID, nb.encrypted = sn.id, sn.encrypted
		im.bdms = append(im.bdms, nb)
	}
	dst.images[im.id] = im
	if tok := p.str("ClientToken"); tok != "" {
		s.tokens["copy/"+dst.name+"/"+tok] = im.id
	}
	return &struct {
		Envelope
		ImageID string `xml:"imageId"`
	}{ImageID: im.id}, nil
}

var reAccount = regexp.MustCompile(`^\d{12}$`)

func (r *region) ownedImage(id string) (*image, *apiError) {
	im, err := r.image(id)
	if err != nil {
		return nil, err
	}
	if im.owner != r.s.account {
		return nil, errf("AuthFailure", "Not authorized for image:%s", id)
	}
	return im, nil
}

func (s *Server) modifyImageAttribute(req *request) (header, *apiError) {
	r, p := req.region, req.p
	im, err := r.ownedImage(p.str("ImageId"))
	if err != nil {
		return nil, err
	}
	type change struct {
		add         bool
		users, orgs []string
		ous         []string
		groups      []string
	}
	var changes []change
	for _, op := range []string{"Add", "Remove"} {
		c := change{add: op == "Add"}
		pre := "LaunchPermission." + op
		for i := 1; i <= p.count(pre); i++ {
			ip := pre + "." + strconv.Itoa(i)
			if v := p.str(ip + ".UserId"); v != "" {
				c.users = append(c.users, v)
			}
			if v := p.str(ip + ".OrganizationArn"); v != "" {
				c.orgs = append(c.orgs, v)
			}
			if v := p.str(ip + ".OrganizationalUnitArn"); v != "" {
				c.ous = append(c.ous, v)
			}
			if v := p.str(ip + ".Group"); v != "" {
				c.groups = append(c.groups, v)
			}
		}
		changes = append(changes, c)
	}
	// Legacy form: Attribute=launchPermission&OperationType=add&UserId.1=...
	if strings.EqualFold(p.str("Attribute"), "launchPermission") || p.has("OperationType") {
		op := p.str("OperationType")
		if op != "add" && op != "remove" {
			return nil, errf("InvalidParameterValue", "OperationType must be add or remove, not %q", op)
		}
		changes = append(changes, change{add: op == "add", users: p.list("UserId"), orgs: p.list("OrganizationArn"),
			ous: p.list("OrganizationalUnitArn"), groups: p.list("UserGroup")})
	}
	for _, c := range changes {
		for _, u := range c.users {
			if !reAccount.MatchString(u) {
				return nil, errf("InvalidAMIAttributeItemValue", "Invalid attribute item value \"%s\" for userId item type.", u)
			}
		}
		for _, g := range c.groups {
			if g != "all" {
				return nil, errf("InvalidAMIAttributeItemValue", "Invalid attribute item value \"%s\" for group item type.", g)
			}
		}
		for _, o := range append(append([]string(nil), c.orgs...), c.ous...) {
			if !strings.HasPrefix(o, "arn:aws:organizations::") {
				return nil, errf("InvalidParameter", "Invalid organization ARN %q (expect arn:aws:organizations::...)", o)
			}
		}
	}
	for _, c := range changes {
		set := func(m map[string]bool, keys []string) {
			for _, k := range keys {
				if c.add {
					m[k] = true
				} else {
					delete(m, k)
				}
			}
		}
		set(im.launchUsers, c.users)
		set(im.launchOrgs, c.orgs)
		set(im.launchOUs, c.ous)
		if len(c.groups) > 0 {
			im.public = c.add
		}
	}
	if p.has("Description.Value") {
		im.desc = p.str("Description.Value")
	}
	if p.has("ImdsSupport.Value") {
		v := p.str("ImdsSupport.Value")
		if v != "v2.0" {
			return nil, errf("InvalidParameterValue", "ImdsSupport can only be set to v2.0, not %q", v)
		}
		im.imdsSupport = v
	}
	return &Envelope{}, nil
}

type launchPermXML struct {
	UserID string `xml:"userId,omitempty"`
	Group  string `xml:"group,omitempty"`
	Org    string `xml:"organizationArn,omitempty"`
	OU     string `xml:"organizationalUnitArn,omitempty"`
}

type valueXML struct {
	Value string `xml:"value"`
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func (s *Server) describeImageAttribute(req *request) (header, *apiError) {
	r, p := req.region, req.p
	im, err := r.ownedImage(p.str("ImageId"))
	if err != nil {
		return nil, err
	}
	out := &struct {
		Envelope
		ImageID     string          `xml:"imageId"`
		LaunchPerms []launchPermXML `xml:"launchPermission>item"`
		Description *valueXML       `xml:"description,omitempty"`
		IMDS        *valueXML       `xml:"imdsSupport,omitempty"`
		BootMode    *valueXML       `xml:"bootMode,omitempty"`
		BDMs        []bdmXML        `xml:"blockDeviceMapping>item"`
		Kernel      *valueXML       `xml:"kernel,omitempty"`
		Ramdisk     *valueXML       `xml:"ramdisk,omitempty"`
		LastLaunch  *valueXML       `xml:"lastLaunchedTime,omitempty"`
	}{ImageID: im.id}
	switch p.str("Attribute") {
	case "launchPermission":
		if im.public {
			out.LaunchPerms = append(out.LaunchPerms, launchPermXML{Group: "all"})
		}
		for _, u := range sortedKeys(im.launchUsers) {
			out.LaunchPerms = append(out.LaunchPerms, launchPermXML{UserID: u})
		}
		for _, o := range sortedKeys(im.launchOrgs) {
			out.LaunchPerms = append(out.LaunchPerms, launchPermXML{Org: o})
		}
		for _, o := range sortedKeys(im.launchOUs) {
			out.LaunchPerms = append(out.LaunchPerms, launchPermXML{OU: o})
		}
	case "description":
		out.Description = &valueXML{Value: im.desc}
	case "imdsSupport":
		out.IMDS = &valueXML{Value: im.imdsSupport}
	case "bootMode":
		out.BootMode = &valueXML{Value: im.bootMode}
	case "blockDeviceMapping":
		out.BDMs = s.imageXML(im).BDMs
	case "kernel":
		out.Kernel = &valueXML{}
	case "ramdisk":
		out.Ramdisk = &valueXML{}
	case "lastLaunchedTime":
		out.LastLaunch = &valueXML{}
	case "":
		return nil, errf("MissingParameter", "The request must contain the parameter Attribute")
	default:
		return nil, errf("InvalidRequest", "The attribute %q is not supported by the emulator", p.str("Attribute"))
	}
	return out, nil
}

func (s *Server) enableImageDeprecation(req *request) (header, *apiError) {
	r, p := req.region, req.p
	im, err := r.ownedImage(p.str("ImageId"))
	if err != nil {
		return nil, err
	}
	at, perr := time.Parse(time.RFC3339Nano, p.str("DeprecateAt"))
	if perr != nil {
		return nil, errf("InvalidParameterValue", "DeprecateAt %q is not a valid timestamp", p.str("DeprecateAt"))
	}
	if !at.After(req.now) {
		return nil, errf("InvalidParameterValue", "The deprecation time must be in the future: %s", p.str("DeprecateAt"))
	}
	if at.After(req.now.AddDate(10, 0, 0)) {
		return nil, errf("InvalidParameterValue", "The deprecation time can be at most 10 years in the future")
	}
	// AWS keeps minute precision; seconds are rounded to the nearest minute.
	im.deprecation = at.UTC().Round(time.Minute)
	return okResponse(), nil
}

func (s *Server) disableImageDeprecation(req *request) (header, *apiError) {
	im, err := req.region.ownedImage(req.p.str("ImageId"))
	if err != nil {
		return nil, err
	}
	im.deprecation = time.Time{}
	return okResponse(), nil
}

type deleteSnapXML struct {
	SnapshotID string `xml:"snapshotId"`
	ReturnCode string `xml:"returnCode"`
}

func (s *Server) deregisterImage(req *request) (header, *apiError) {
	r, p := req.region, req.p
	im, err := r.ownedImage(p.str("ImageId"))
	if err != nil {
		return nil, err
	}
	delete(r.images, im.id)
	out := &struct {
		Envelope
		Return  bool            `xml:"return"`
		Results []deleteSnapXML `xml:"deleteSnapshotResultSet>item"`
	}{Return: true}
	if p.boolean("DeleteAssociatedSnapshots") {
		for _, b := range im.bdms {
			sn := r.snapshots[b.snapshotID]
			if sn == nil {
				continue
			}
			if r.snapshotUser(sn.id) != "" {
				out.Results = append(out.Results, deleteSnapXML{SnapshotID: sn.id, ReturnCode: "warn-skipped-snapshot-in-use"})
				continue
			}
			delete(r.snapshots, sn.id)
			out.Results = append(out.Results, deleteSnapXML{SnapshotID: sn.id, ReturnCode: "success"})
		}
	}
	s.releaseRef(im.ref)
	return out, nil
}

// snapshotUser returns the id of an image that still uses the snapshot.
func (r *region) snapshotUser(id string) string {
	for _, im := range r.images {
		for _, b := range im.bdms {
			if b.snapshotID == id {
				return im.id
			}
		}
	}
	return ""
}

// --- snapshots and volumes ---

type snapshotXML struct {
	ID        string   `xml:"snapshotId"`
	VolumeID  string   `xml:"volumeId"`
	Status    string   `xml:"status"`
	StartTime string   `xml:"startTime"`
	Progress  string   `xml:"progress"`
	Owner     string   `xml:"ownerId"`
	Size      int      `xml:"volumeSize"`
	Desc      string   `xml:"description"`
	Encrypted bool     `xml:"encrypted"`
	Storage   string   `xml:"storageTier"`
	Tags      []tagXML `xml:"tagSet>item"`
}

func (s *Server) describeSnapshots(req *request) (header, *apiError) {
	r, p := req.region, req.p
	ids := p.list("SnapshotId")
	owners := p.list("Owner")
	if len(ids) > 0 && p.has("MaxResults") {
		return nil, errf("InvalidParameterCombination", "The parameter snapshotSet cannot be used with the parameter maxResults")
	}
	for _, id := range ids {
		if _, err := r.snapshot(id); err != nil {
			return nil, err
		}
	}
	var items []snapshotXML
	for _, sn := range sortedBySeq(r.snapshots, func(x *snapshot) int64 { return x.seq }) {
		if len(ids) > 0 && !contains(ids, sn.id) {
			continue
		}
		if len(owners) > 0 && !contains(owners, sn.owner) && !(contains(owners, "self") && sn.owner == s.account) {
			continue
		}
		r.settleSnapshot(sn, req.now)
		ok, err := matchFilters(p.filters(), sn.tags, func(f string) ([]string, bool) {
			switch f {
			case "snapshot-id":
				return one(sn.id), true
			case "volume-id":
				return one(sn.volumeID), true
			case "status":
				return one(sn.state), true
			case "owner-id":
				return one(sn.owner), true
			case "description":
				return one(sn.desc), true
			case "encrypted":
				return one(boolStr(sn.encrypted)), true
			case "volume-size":
				return one(strconv.Itoa(sn.size)), true
			}
			return nil, false
		})
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		sn.polls++
		progress := "100%"
		if sn.state == "pending" {
			progress = "0%"
		}
		items = append(items, snapshotXML{ID: sn.id, VolumeID: sn.volumeID, Status: sn.state, StartTime: fmtTime(sn.started),
			Progress: progress, Owner: sn.owner, Size: sn.size, Desc: sn.desc, Encrypted: sn.encrypted, Storage: "standard",
			Tags: tagList(sn.tags)})
	}
	pg, next, err := page(p, items, 5, 1000)
	if err != nil {
		return nil, err
	}
	return &struct {
		Envelope
		Snapshots []snapshotXML `xml:"snapshotSet>item"`
		Next      string        `xml:"nextToken,omitempty"`
	}{Snapshots: pg, Next: next}, nil
}

func (s *Server) deleteSnapshot(req *request) (header, *apiError) {
	r := req.region
	sn, err := r.snapshot(req.p.str("SnapshotId"))
	if err != nil {
		return nil, err
	}
	if sn.owner != s.account {
		return nil, errf("UnauthorizedOperation", "You are not authorized to delete snapshot %s", sn.id)
	}
	if im := r.snapshotUser(sn.id); im != "" {
		return nil, errf("InvalidSnapshot.InUse", "The snapshot %s is currently in use by %s", sn.id, im)
	}
	delete(r.snapshots, sn.id)
	s.releaseRef(sn.ref)
	return okResponse(), nil
}

type volumeXML struct {
	ID          string `xml:"volumeId"`
	Size        int    `xml:"size"`
	SnapshotID  string `xml:"snapshotId"`
	AZ          string `xml:"availabilityZone"`
	Status      string `xml:"status"`
	CreateTime  string `xml:"createTime"`
	Attachments []struct {
		VolumeID     string `xml:"volumeId"`
		InstanceID   string `xml:"instanceId"`
		Device       string `xml:"device"`
		Status       string `xml:"status"`
		DeleteOnTerm bool   `xml:"deleteOnTermination"`
	} `xml:"attachmentSet>item"`
	Type       string   `xml:"volumeType"`
	Iops       int      `xml:"iops,omitempty"`
	Throughput int      `xml:"throughput,omitempty"`
	Encrypted  bool     `xml:"encrypted"`
	Tags       []tagXML `xml:"tagSet>item"`
}

func (s *Server) describeVolumes(req *request) (header, *apiError) {
	r, p := req.region, req.p
	ids := p.list("VolumeId")
	for _, id := range ids {
		if _, err := r.volume(id); err != nil {
			return nil, err
		}
	}
	var items []volumeXML
	for _, v := range sortedBySeq(r.volumes, func(x *volume) int64 { return x.seq }) {
		if len(ids) > 0 && !contains(ids, v.id) {
			continue
		}
		ok, err := matchFilters(p.filters(), v.tags, func(f string) ([]string, bool) {
			switch f {
			case "volume-id":
				return one(v.id), true
			case "status":
				return one(v.state), true
			case "attachment.instance-id":
				return one(v.instanceID), true
			case "snapshot-id":
				return one(v.snapshotID), true
			case "availability-zone":
				return one(v.az), true
			case "volume-type":
				return one(v.volType), true
			case "encrypted":
				return one(boolStr(v.encrypted)), true
			}
			return nil, false
		})
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		x := volumeXML{ID: v.id, Size: v.size, SnapshotID: v.snapshotID, AZ: v.az, Status: v.state, CreateTime: fmtTime(v.created),
			Type: v.volType, Iops: v.iops, Throughput: v.throughput, Encrypted: v.encrypted, Tags: tagList(v.tags)}
		if v.instanceID != "" {
			x.Attachments = append(x.Attachments, struct {
				VolumeID     string `xml:"volumeId"`
				InstanceID   string `xml:"instanceId"`
				Device       string `xml:"device"`
				Status       string `xml:"status"`
				DeleteOnTerm bool   `xml:"deleteOnTermination"`
			}{v.id, v.instanceID, v.device, "attached", v.deleteOnTerm})
		}
		items = append(items, x)
	}
	pg, next, err := page(p, items, 5, 1000)
	if err != nil {
		return nil, err
	}
	return &struct {
		Envelope
		Volumes []volumeXML `xml:"volumeSet>item"`
		Next    string      `xml:"nextToken,omitempty"`
	}{Volumes: pg, Next: next}, nil
}

func (s *Server) deleteVolume(req *request) (header, *apiError) {
	r := req.region
	v, err := r.volume(req.p.str("VolumeId"))
	if err != nil {
		return nil, err
	}
	if v.state != "available" {
		return nil, errf("VolumeInUse", "Volume %s is currently attached to %s", v.id, v.instanceID)
	}
	delete(r.volumes, v.id)
	return okResponse(), nil
}
