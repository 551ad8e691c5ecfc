package install

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
)

func (in *installer) aptInstall(ctx context.Context, what ...string) error {
	if !in.aptFresh {
		if _, err := in.exec(ctx, Command{Name: "apt-get", Args: []string{"-q", "update"}, Env: []string{"DEBIAN_FRONTEND=noninteractive"}}); err != nil {
			return fmt.Errorf("apt-get update: %w; check the image's apt sources and network", err)
		}
		in.aptFresh = true
	}
	in.aptUsed = true
	args := append([]string{"-q", "-y", "--no-install-recommends", "install"}, what...)
	if _, err := in.exec(ctx, Command{Name: "apt-get", Args: args, Env: []string{"DEBIAN_FRONTEND=noninteractive"}}); err != nil {
		return fmt.Errorf("apt-get install %s: %w", strings.Join(what, " "), err)
	}
	return nil
}

func (in *installer) java(ctx context.Context) error {
	if in.ver.Major >= 7 {
		in.step(StepJava, false, "not needed: Elasticsearch %s bundles its JDK", in.ver)
		return nil
	}
	if got, ok := in.got["java"]; ok {
		d := in.debs["java"]
		in.pkgs = append(in.pkgs, d.Package)
		if in.installedVersions(ctx, d.Package)[d.Package] == d.Version {
			in.step(StepJava, false, "")
			return nil
		}
		// apt-get, not dpkg -i: a JDK .deb depends on java-common and friends.
		if err := in.aptInstall(ctx, got.NodePath); err != nil {
			return err
		}
		in.step(StepJava, true, "installed %s %s from %s", d.Package, d.Version, got.FileName)
		return nil
	}
	pkg := in.node.Java.Package
	in.pkgs = append(in.pkgs, pkg)
	if _, ok := in.installedVersions(ctx, pkg)[pkg]; ok {
		in.step(StepJava, false, "")
		return nil
	}
	if err := in.aptInstall(ctx, pkg); err != nil {
		return err
	}
	in.step(StepJava, true, "installed %s", pkg)
	return nil
}

// dpkgInstall installs a verified .deb unless that version is installed.
func (in *installer) dpkgInstall(ctx context.Context, name string, env ...string) (bool, error) {
	got, d := in.got[name], in.debs[name]
	in.pkgs = append(in.pkgs, d.Package)
	if in.installedVersions(ctx, d.Package)[d.Package] == d.Version {
		return false, nil
	}
	if _, err := in.exec(ctx, Command{Name: "dpkg", Args: []string{"-i", got.NodePath}, Env: append([]string{"DEBIAN_FRONTEND=noninteractive"}, env...)}); err != nil {
		return false, fmt.Errorf("install %s: %w", got.FileName, err)
	}
	return true, nil
}

func (in *installer) elasticsearch(ctx context.Context) error {
	// Elastic's documented switch for hosts where the package must not set
	// vm.max_map_count itself; esnode owns that setting (see system).
	changed, err := in.dpkgInstall(ctx, "elasticsearch", "ES_SKIP_SET_KERNEL_PARAMETERS=true")
	if err != nil {
		return err
	}
	disabled, err := neutraliseAutoConfig(in.fs.host(ESConfigPath))
	if err != nil {
		return err
	}
	if in.imageSec, err = in.removeImageSecrets(ctx); err != nil {
		return err
	}
	secured := ""
	if n := len(in.imageSec.Removed); n > 0 {
		secured = fmt.Sprintf("; removed the package's auto-configured TLS material, keystore passwords and password hash (%d item(s); esnode boot fetches each cluster's own)", n)
	}
	switch {
	case len(disabled) > 0:
		in.step(StepES, true, "installed elasticsearch %s (enabled later, not started); disabled the package's auto-configured %s (esnode boot writes the node's own)%s", in.ver, strings.Join(disabled, ", "), secured)
	case secured != "":
		in.step(StepES, true, "installed elasticsearch %s (enabled later, not started)%s", in.ver, secured)
	case changed:
		in.step(StepES, true, "installed elasticsearch %s (enabled later, not started)", in.ver)
	default:
		in.step(StepES, false, "")
	}
	for _, p := range in.node.Plugins {
		if err := in.plugin(ctx, p.Name); err != nil {
			return err
		}
	}
	return nil
}

func (in *installer) plugin(ctx context.Context, name string) error {
	stepName := "plugin/" + name
	got := in.got[stepName]
	cur, ok := in.fs.installedPlugin(name)
	if ok && cur.ElasticsearchVersion == in.ver.String() {
		in.step(stepName, false, "")
		return nil
	}
	env := []string{"ES_TMPDIR=" + DownloadDir}
	if ok {
		if _, err := in.exec(ctx, Command{Name: ESPluginTool, Args: []string{"remove", name}, Env: env}); err != nil {
			return fmt.Errorf("remove plugin %s built for Elasticsearch %s: %w", name, cur.ElasticsearchVersion, err)
		}
	}
	if _, err := in.exec(ctx, Command{Name: ESPluginTool, Args: []string{"install", "--batch", "file://" + got.NodePath}, Env: env}); err != nil {
		return fmt.Errorf("install plugin %s: %w", name, err)
	}
	if now, ok := in.fs.installedPlugin(name); !ok || now.ElasticsearchVersion != in.ver.String() {
		return fmt.Errorf("plugin %s: elasticsearch-plugin succeeded but %s/%s/plugin-descriptor.properties is missing or not for %s", name, ESPluginsDir, name, in.ver)
	}
	in.step(stepName, true, "installed %s for Elasticsearch %s", got.FileName, in.ver)
	return nil
}

func (in *installer) system(ctx context.Context) error {
	var did []string
	for _, w := range []struct {
		path string
		data []byte
	}{{SysctlPath, renderSysctl(&in.node)}, {LimitsDropInPath, renderLimits(&in.node)}, {TmpDropInPath, renderTmpDropIn()}} {
		changed, err := in.fs.writeFile(w.path, w.data, 0o644)
		if err != nil {
			return err
		}
		if changed {
			did = append(did, "wrote "+w.path)
			if strings.HasPrefix(w.path, "/etc/systemd/") {
				in.unitsNew = true
			}
		}
	}
	if in.live() {
		if msg := applyMaxMapCount(in.node.System.MaxMapCount); msg != "" {
			if strings.HasPrefix(msg, "warning: ") {
				in.warn("%s", strings.TrimPrefix(msg, "warning: "))
			} else {
				did = append(did, msg)
			}
		}
	}
	in.step(StepSystem, len(did) > 0, "%s", strings.Join(did, ", "))
	return nil
}

// applyMaxMapCount raises the running kernel's vm.max_map_count; a container
// that forbids it (EPERM, EROFS) gets a warning, the file applies at boot.
func applyMaxMapCount(want int) string {
	const p = "/proc/sys/vm/max_map_count"
	b, err := os.ReadFile(p)
	if err != nil {
		return "warning: cannot read " + p + ": " + err.Error()
	}
	cur, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err == nil && cur >= want {
		return ""
	}
	if err := os.WriteFile(p, []byte(strconv.Itoa(want)+"\n"), 0o644); err != nil {
		return fmt.Sprintf("warning: cannot set vm.max_map_count=%d now (%v); %s applies it at boot", want, err, SysctlPath)
	}
	return fmt.Sprintf("set vm.max_map_count=%d", want)
}

func (in *installer) elasticHQ(ctx context.Context) error {
	hq := in.node.ElasticHQ
	if !hq.Enabled {
		in.step(StepHQ, false, "not enabled")
		return nil
	}
	var did []string
	in.pkgs = append(in.pkgs, "python3", "python3-venv")
	have := in.installedVersions(ctx, "python3", "python3-venv")
	if _, ok := have["python3-venv"]; !ok {
		if err := in.aptInstall(ctx, "python3-venv"); err != nil {
			return err
		}
		did = append(did, "installed python3-venv")
	}
	if !in.fs.hasUser(hq.User) {
		if _, err := in.exec(ctx, Command{Name: "useradd", Args: []string{"--system", "--user-group", "--no-create-home", "--home-dir", HQStateDir, "--shell", "/usr/sbin/nologin", hq.User}}); err != nil {
			return fmt.Errorf("create the ElasticHQ user %s: %w", hq.User, err)
		}
		did = append(did, "created system user "+hq.User)
	}
	dir := hqDir(hq.Version)
	got := in.got["elastichq"]
	if !in.fs.hqExtracted(dir, got.Sum) {
		if err := in.fs.extractHQ(got.HostPath, dir, got.Sum); err != nil {
			return err
		}
		did = append(did, "extracted "+got.FileName+" to "+dir)
	}
	if !in.fs.exists(HQVenv + "/bin/python") {
		if _, err := in.exec(ctx, Command{Name: "python3", Args: []string{"-m", "venv", HQVenv}}); err != nil {
			return fmt.Errorf("create the ElasticHQ virtualenv: %w; is python3-venv installed?", err)
		}
		did = append(did, "created "+HQVenv)
	}
	req, err := os.ReadFile(in.fs.host(dir + "/requirements.txt"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("read ElasticHQ requirements: %w", err)
	}
	wheels := dir + "/wheels"
	offline := in.fs.exists(wheels)
	reqSum := sha256.Sum256(append(append([]byte(dir+"\n"), req...), strconv.FormatBool(offline)...))
	marker := in.fs.host(HQVenv + "/" + reqMarker)
	if b, _ := os.ReadFile(marker); strings.TrimSpace(string(b)) != hex.EncodeToString(reqSum[:]) {
		if hasRequirements(req) {
			args := []string{"install", "--no-cache-dir", "--disable-pip-version-check", "--require-virtualenv"}
			if offline {
				// wheels/ is inside the tarball, under its SHA-512.
				args = append(args, "--no-index", "--find-links", wheels)
			} else {
				// From an index, only hashes keep the packages under the
				// same guarantee as the tarball that names them.
				if line := unhashedRequirement(req); line != "" {
					return fmt.Errorf("ElasticHQ's requirements.txt installs %q from the package index without a --hash, outside the tarball's SHA-512 guarantee; repack the tarball with hashed requirements (pip-compile --generate-hashes) or with a wheels/ directory of the requirements", line)
				}
				args = append(args, "--require-hashes")
			}
			args = append(args, "-r", dir+"/requirements.txt")
			if _, err := in.exec(ctx, Command{Name: HQVenv + "/bin/pip", Args: args}); err != nil {
				hint := ""
				if !offline {
					hint = "; an air-gapped bake needs a wheels/ directory (a wheelhouse of the requirements) inside the ElasticHQ tarball"
				}
				return fmt.Errorf("install ElasticHQ requirements: %w%s", err, hint)
			}
			how := "from the index"
			if offline {
				how = "offline from wheels/"
			}
			did = append(did, "installed requirements "+how)
		}
		if err := os.WriteFile(marker, []byte(hex.EncodeToString(reqSum[:])+"\n"), 0o644); err != nil {
			return fmt.Errorf("record ElasticHQ requirements: %w", err)
		}
		if err := os.Chmod(marker, 0o644); err != nil { // not the umask's 0640
			return fmt.Errorf("record ElasticHQ requirements: %w", err)
		}
	}
	if len(did) > 0 {
		// venv and pip follow the umask (027 on CIS): make the tree
		// readable by the service user, writable by root only.
		if err := normalizeTree(in.fs.host(HQBase)); err != nil {
			return err
		}
	}
	changed, err := in.fs.writeFile(HQUnitPath, renderHQUnit(&in.node), 0o644)
	if err != nil {
		return err
	}
	if changed {
		in.unitsNew = true
		did = append(did, "wrote "+HQUnitPath)
	}
	in.step(StepHQ, len(did) > 0, "%s", strings.Join(did, ", "))
	return nil
}

func (in *installer) cwAgent(ctx context.Context) error {
	if !in.node.CloudWatchAgent.Enabled {
		in.step(StepCWAgent, false, "not enabled")
		return nil
	}
	changed, err := in.dpkgInstall(ctx, "cloudwatch-agent")
	if err != nil {
		return err
	}
	if changed {
		d := in.debs["cloudwatch-agent"]
		in.step(StepCWAgent, true, "installed %s %s (configured at boot)", d.Package, d.Version)
	} else {
		in.step(StepCWAgent, false, "")
	}
	return nil
}

func (in *installer) self(ctx context.Context) error {
	var did []string
	changed, err := in.fs.writeFile(EsnodePath, in.esnode, 0o755)
	if err != nil {
		return err
	}
	if changed {
		did = append(did, "installed "+EsnodePath)
	}
	units := []struct {
		path string
		data []byte
	}{{BootUnitPath, renderBootUnit()}, {JoinedUnitPath, renderJoinedUnit()}, {DrainUnitPath, renderDrainUnit()}, {ESBootDropInPath, renderRequiresBoot(ESUnit)}}
	if in.node.ElasticHQ.Enabled {
		units = append(units, struct {
			path string
			data []byte
		}{HQBootDropInPath, renderRequiresBoot(HQUnit)})
	}
	for _, u := range units {
		if changed, err = in.fs.writeFile(u.path, u.data, 0o644); err != nil {
			return err
		}
		if changed {
			in.unitsNew = true
			did = append(did, "wrote "+u.path)
		}
	}
	in.step(StepEsnode, len(did) > 0, "%s", strings.Join(did, ", "))
	return nil
}

func (in *installer) units() []string {
	u := []string{BootUnit, ESUnit, JoinedUnit, DrainUnit}
	if in.node.ElasticHQ.Enabled {
		u = append(u, HQUnit)
	}
	// The agent's package ships its unit disabled; esnode boot restarts the
	// agent only when its config changed, so without enabling it the agent
	// would not run after a reboot.
	if in.node.CloudWatchAgent.Enabled {
		u = append(u, CWAgentUnit)
	}
	return u
}

// services enables (never starts) the node's units: a baked image starts
// them on its first boot, after esnode boot.
func (in *installer) services(ctx context.Context) error {
	var did []string
	if in.live() && in.unitsNew {
		if _, err := in.exec(ctx, Command{Name: "systemctl", Args: []string{"daemon-reload"}}); err != nil {
			in.warn("systemctl daemon-reload failed (no running systemd?); units load at the next boot: %v", err)
		}
	}
	for _, u := range in.units() {
		if in.fs.isEnabled(u) {
			continue
		}
		if in.live() {
			if _, err := in.exec(ctx, Command{Name: "systemctl", Args: []string{"enable", u}}); err != nil {
				return fmt.Errorf("enable %s: %w", u, err)
			}
		} else if err := in.fs.linkEnable(u); err != nil {
			return fmt.Errorf("enable %s: %w", u, err)
		}
		did = append(did, "enabled "+u)
	}
	in.step(StepServices, len(did) > 0, "%s", strings.Join(did, ", "))
	return nil
}
