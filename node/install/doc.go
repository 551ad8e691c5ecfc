// Package install is `esnode install`: it bakes an Elasticsearch node into
// a Debian or Ubuntu target, once, at image build time.
//
// Order: wait for cloud-init (`cloud-init status --wait`, when asked) and
// for the apt/dpkg locks; resolve the spec's artifacts (spec.Artifacts) and
// their expected SHA-512 (a sum in the spec, or a `file:<url>` checksum file
// in sha512sum, BSD or bare form); if the node already matches
// /etc/esnode/manifest.json (same spec hash, esnode, artifact sums, file
// sums, package versions, plugins, units) nothing else happens. Otherwise
// every artifact is downloaded into the private directory
// /var/cache/esnode/downloads (0700, on the target's disk: /tmp and /var/tmp
// are noexec on CIS images, and children get it as TMPDIR) and verified
// before anything is installed; the .debs' package fields, the plugin zips'
// descriptors (elasticsearch.version must be the spec's) and the ElasticHQ
// tarball's layout are checked too. A mismatch is an error naming the
// artifact, the expected and the actual sum, and the target is left as it
// was.
//
// Then: Java for 6.x only (apt-get the spec's package, or the java.url .deb
// through apt-get so its dependencies resolve); the Elasticsearch .deb with
// dpkg -i and ES_SKIP_SET_KERNEL_PARAMETERS=true; plugins with
// `elasticsearch-plugin install --batch file://...`; sysctl
// (60-elasticsearch.conf), the service's limits and a private ES_TMPDIR as
// systemd drop-ins (vm.max_map_count is applied live only on "/", and a
// container that forbids it gets a warning); ElasticHQ in
// /usr/share/elastichq/<version> with a system user, a venv in
// /usr/share/elastichq/venv and elastichq.service; the CloudWatch agent .deb
// (configured by esnode boot); /usr/local/bin/esnode and
// esnode-boot.service. Units are enabled, never started: the image starts
// them on its first boot, after esnode boot. Install adds no firewall rules
// and never flushes any; boot owns them.
//
// ElasticHQ's requirements are installed with pip from the tarball's
// requirements.txt: offline (`--no-index --find-links wheels/`) when the
// tarball carries a wheels/ directory, else from the package index. An
// air-gapped bake therefore needs a tarball with a wheelhouse: build one
// with `pip download -d wheels -r requirements.txt` on a connected machine
// of the same architecture and Python, add it to the release directory,
// repack and pin the new tarball's SHA-512.
//
// Every step prints one line: what it did, or "unchanged". A second run with
// the same spec and artifacts changes nothing and says so. Files are written
// with explicit modes and root ownership (the umask is 027 on CIS images);
// nothing is world-writable.
//
// With Generalize, the end removes SSH host keys, every user's
// authorized_keys and shell histories, cloud-init's instance state (through
// `cloud-init clean --logs` when it is installed) and empties
// /etc/machine-id.
package install
