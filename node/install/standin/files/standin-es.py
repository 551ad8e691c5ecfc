#!/usr/bin/env python3
# Stand-in, not the real Elasticsearch. It enforces the contracts of the real
# server that esbake's images depend on, in Elastic's own words where known,
# so a configuration the real server refuses fails the tests too:
#  - settings: every elasticsearch.yml key must be registered by this major
#    (standin-settings.json, built from spec/essettings; the discovery-ec2
#    keys only when that plugin is installed); keystore-only settings in the
#    file are refused (AbstractScopedSettings.validate, SecureSetting.get).
#  - bootstrap checks when bound to a non-loopback address (BootstrapChecks:
#    HeapSizeCheck, FileDescriptorCheck, MaxMapCountCheck, MlockallCheck,
#    MaxNumberOfThreadsCheck, MaxSizeVirtualMemoryCheck, MaxFileSizeCheck,
#    DiscoveryConfiguredCheck on 7+), and x-pack's: 8.x with security on (the
#    default) and no transport TLS (TransportTLSBootstrapCheck); 7.x with
#    security explicitly on, no transport TLS and the basic license a formed
#    cluster holds (TLSLicenseBootstrapCheck, XPackLicenseState.
#    isTransportTlsRequired).
#  - 8.x SSL settings (SSLService.validateServerConfiguration): a layer
#    enabled without a key and certificate (or keystore), or configured
#    without its `enabled` key, stops the node at start.
#  - discovery and cluster formation over a TCP transport of its own (JSON
#    lines on transport.port, between stand-ins only): peers from
#    discovery.seed_hosts / discovery.zen.ping.unicast.hosts and from the EC2
#    API (discovery-ec2: DescribeInstances, tag filters, running/pending,
#    private IPs, SigV4 with the node's credentials). 6.x elects by Zen rules
#    (discovery.zen.minimum_master_nodes, default -1 = any one node); 7+
#    bootstraps only from cluster.initial_master_nodes (ClusterBootstrapService:
#    a node matches by name, address or IP; bootstrap once more than half the
#    listed nodes are discovered and the local node is one of them) or
#    discovery.type: single-node; a node keeps its cluster UUID in path.data
#    and refuses to join a cluster with another UUID (JoinHelper/Coordinator).
#  - shards (lib/standin_shards.py, sources cited there): indices with
#    primaries and replicas that the elected master allocates, relocates off
#    excluded nodes and loses when the node holding the only copy leaves; the
#    model travels in the cluster state, so a new master takes it over.
#  - HTTP: GET /, /_cluster/health, /_cluster/state, /_nodes[/...], /_cat/master,
#    GET/PUT /_cluster/settings, PUT /<index>, /_cat/shards, /_cat/indices,
#    POST/DELETE /_cluster/voting_config_exclusions (7+). Cluster-level
#    requests go to the elected master over the transport, as
#    TransportMasterNodeAction sends them.
# Transport TLS is real (Python ssl, mutual); HTTP TLS settings are only
# validated (HTTP stays plain), nothing authenticates, and it stores no
# documents.
import base64
import ctypes
import datetime
import hashlib
import hmac
import http.server
import ipaddress
import json
import os
import re
import resource
import socket
import socketserver
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET

import standin_shards as shards

VERSION = "@VERSION@"
MAJOR, MINOR = (int(x) for x in VERSION.split(".")[:2])
LIB = os.path.dirname(os.path.abspath(__file__))
HOME = os.environ.get("ES_HOME", os.path.dirname(LIB))
CONF = os.environ.get("ES_PATH_CONF", "/etc/elasticsearch")


def is_loopback(ip):
    try:
        return ipaddress.ip_address(ip).is_loopback
    except ValueError:
        return False


def log(level, msg):
    line = "[%s][%-5s][standin] %s" % (datetime.datetime.utcnow().strftime("%Y-%m-%dT%H:%M:%S,%f")[:-3], level, msg)
    print(line, flush=True)


def fail(msg, code=1, exc="java.lang.IllegalArgumentException"):
    """Exit as Elasticsearch does on a startup exception."""
    if MAJOR >= 8:
        sys.stderr.write("%s: %s\n" % (exc, msg))
        sys.stderr.write("ERROR: Elasticsearch did not exit normally - check the logs\n")
    else:
        sys.stderr.write("uncaught exception in thread [main]\n%s: %s\n" % (exc, msg))
    sys.stderr.flush()
    sys.exit(code)


# --- elasticsearch.yml: the YAML subset Elastic's docs and packages use ------

def scalar(v, where):
    v = v.strip()
    if v.startswith("[") and v.endswith("]"):
        return [scalar(x, where) for x in split_flow(v[1:-1]) if x.strip()]
    if len(v) >= 2 and v[0] == v[-1] and v[0] in "\"'":
        v = v[1:-1]
    return resolve_placeholders(v, where)


def split_flow(s):
    out, cur, q = [], "", None
    for ch in s:
        if q:
            cur += ch
            if ch == q:
                q = None
        elif ch in "\"'":
            q = ch
            cur += ch
        elif ch == ",":
            out.append(cur)
            cur = ""
        else:
            cur += ch
    out.append(cur)
    return out


def resolve_placeholders(v, where):
    # Settings.Builder.replacePropertyPlaceholders: ${VAR} from the environment.
    def sub(m):
        name = m.group(1)
        if name in os.environ:
            return os.environ[name]
        fail("Could not resolve placeholder '%s' (%s)" % (name, where))
    return re.sub(r"\$\{([^}]+)\}", sub, v)


def strip_comment(line):
    q = None
    for i, ch in enumerate(line):
        if q:
            if ch == q:
                q = None
        elif ch in "\"'":
            q = ch
        elif ch == "#" and (i == 0 or line[i - 1] in " \t"):
            return line[:i]
    return line


def load_yml(path):
    """Flattened settings (a.b.c -> value), refusing duplicates as ES does."""
    flat, stack = {}, []  # stack of (indent, prefix)
    try:
        lines = open(path).read().splitlines()
    except FileNotFoundError:
        return flat
    last_key = None
    for n, raw in enumerate(lines, 1):
        line = strip_comment(raw).rstrip()
        if not line.strip() or line.strip() == "---":
            continue
        indent = len(line) - len(line.lstrip(" "))
        body = line.strip()
        while stack and indent <= stack[-1][0]:
            stack.pop()
        prefix = stack[-1][1] if stack else ""
        if body.startswith("- "):
            if last_key is None:
                fail("cannot parse %s line %d: a list item without a key" % (path, n))
            cur = flat.get(last_key)
            flat[last_key] = (cur if isinstance(cur, list) else []) + [scalar(body[2:], "%s:%d" % (path, n))]
            continue
        m = re.match(r"""((?:"[^"]*"|'[^']*'|[^:]|:(?=\S))+):(?:\s+|$)(.*)$""", body)
        if not m:
            fail("cannot parse %s line %d: %r" % (path, n, raw))
        key, value = m.group(1), m.group(2)
        key = prefix + key.strip().strip("\"'")
        if value.strip() == "":
            stack.append((indent, key + "."))
            last_key = key
            flat.setdefault(key, None)
            continue
        if key in flat and flat[key] is not None:
            # Settings.Builder.loadFromMap / XContent duplicate detection.
            fail("duplicate settings key [%s] found at line number [%d], previous value [%s], current value [%s]" % (key, n, flat[key], value.strip()))
        flat[key] = scalar(value, "%s:%d" % (path, n))
        last_key = key
    # A key followed by a nested block is a prefix, not a setting.
    return {k: v for k, v in flat.items() if v is not None}


def as_list(v):
    if v is None or v == "":
        return []
    return v if isinstance(v, list) else [x.strip() for x in str(v).split(",") if x.strip()]


def fmt_list(items):
    return "[%s]" % ", ".join(str(i) for i in items)


def as_bool(v, key):
    if v in (None, ""):
        return None
    s = str(v)
    if s not in ("true", "false"):
        fail("Failed to parse value [%s] as only [true] or [false] are allowed. (setting [%s])" % (s, key))
    return s == "true"


# --- the registered-settings table ------------------------------------------

class Table:
    def __init__(self, path, plugins):
        with open(path) as fh:
            d = json.load(fh)
        self.keys = set(d["keys"])
        self.secure = set(d.get("secure") or [])
        self.prefixes = [p["prefix"] for p in d.get("prefixes") or []]
        self.removed = d.get("removed") or {}
        self.line = d.get("line", "")
        if "discovery-ec2" not in plugins:
            # Registered by Ec2DiscoveryPlugin.getSettings() only.
            drop = lambda k: k.startswith("discovery.ec2.") or k == "cloud.node.auto_attributes"
            self.keys = {k for k in self.keys if not drop(k)}
            self.secure = {k for k in self.secure if not drop(k)}
            self.prefixes = [p for p in self.prefixes if not drop(p)]

    def check(self, key):
        if key in self.secure:
            return "Setting [%s] is a secure setting and must be stored inside the Elasticsearch keystore, but was found inside elasticsearch.yml" % key
        if key in self.keys:
            return None
        for p in self.prefixes:
            rest = key[len(p):]
            if key.startswith(p) and re.fullmatch(r"(?:[-\w]+\.)*[-\w]+", rest, re.ASCII):
                return None
        msg = "unknown setting [%s] please check that any required plugins are installed, or check the breaking changes documentation for removed settings" % key
        hint = self.removed.get(key) or next((v for k, v in sorted(self.removed.items(), key=lambda kv: -len(kv[0])) if k.endswith(".") and key.startswith(k)), None)
        return msg + (" (Elasticsearch %s: %s)" % (self.line, hint) if hint else "")


# --- node configuration -----------------------------------------------------

DEFAULT_ROLES = ["data", "data_cold", "data_content", "data_frozen", "data_hot", "data_warm",
                 "ingest", "master", "ml", "remote_cluster_client", "transform"]
KNOWN_ROLES = set(DEFAULT_ROLES) | {"voting_only"}


def node_roles(s):
    legacy = [k for k in ("node.master", "node.data", "node.ingest", "node.ml", "node.voting_only",
                          "node.transform", "node.remote_cluster_client") if k in s]
    if "node.roles" in s:
        if legacy:
            # DiscoveryNode.getRolesFromSettings (validateLegacySettings): the two forms cannot be mixed.
            fail("can not explicitly configure node roles and use legacy role setting [%s]=[%s]" % (legacy[0], s[legacy[0]]))
        roles = as_list(s["node.roles"])
        for r in roles:
            if r not in KNOWN_ROLES:
                fail("unknown role [%s]" % r)
        if "voting_only" in roles and "master" not in roles:
            fail("voting-only node must be master-eligible")  # DiscoveryNodeRole.VOTING_ONLY_NODE_ROLE.validateRoles (7.x: VotingOnlyNodePlugin)
        return sorted(set(roles))
    if MAJOR >= 7:
        roles = set(DEFAULT_ROLES)
    else:
        roles = {"master", "data", "ingest"}
    for k in legacy:
        role = k[len("node."):]
        if as_bool(s[k], k):
            roles.add(role)
        else:
            roles.discard(role)
            if role == "data":
                roles -= {r for r in roles if r.startswith("data_")}
    if "voting_only" in roles and "master" not in roles:
        fail("voting-only node must be master-eligible")
    return sorted(roles)


def resolve_host(value, purpose):
    """One address for a bind/publish host value (NetworkService special values)."""
    v = (as_list(value) or ["_local_"])[0]
    if v in ("_local_", "_local:ipv4_"):
        return "127.0.0.1"
    if v in ("0.0.0.0", "_site_", "_global_", "_ec2_", "_ec2:privateIpv4_", "_eth0_"):
        if v == "0.0.0.0":
            return "0.0.0.0"
        for ip in local_addresses():
            if not ip.startswith("127.") and not ip.startswith("169.254."):
                return ip
        fail("no %s address found for [%s]" % (purpose, v))
    try:
        ipaddress.ip_address(v)
        return v
    except ValueError:
        try:
            return socket.gethostbyname(v)
        except OSError as e:
            fail("failed to resolve host [%s]: %s" % (v, e))


def local_addresses():
    """This host's IPv4 addresses, the routed one first."""
    out = []
    try:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.connect(("10.255.255.255", 1))  # no packet is sent
        out.append(s.getsockname()[0])
        s.close()
    except OSError:
        pass
    try:
        out += socket.gethostbyname_ex(socket.gethostname())[2]
    except OSError:
        pass
    return out


def read_keystore():
    # The real format (lib/standin_keystore.py); a keystore that does not
    # decrypt stops the node, as KeyStoreWrapper.decrypt's exception does.
    try:
        with open(os.path.join(CONF, "elasticsearch.keystore"), "rb") as fh:
            data = fh.read()
    except FileNotFoundError:
        return {}
    sys.path.insert(0, LIB)
    import standin_keystore
    try:
        return {k: v.decode(errors="replace") for k, v in standin_keystore.decode(data)[1].items()}
    except ValueError as e:
        fail("failed to load elasticsearch keystore: %s" % e)


# --- bootstrap checks (BootstrapChecks.java) --------------------------------

def to_bytes(size):
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    s = size.lower()
    return int(s[:-1]) * units[s[-1]] if s and s[-1] in units else int(s)


def mem_total():
    for line in open("/proc/meminfo"):
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    return 0


def heap_from_args(args):
    init = mx = None
    for a in args:
        if a.startswith("-Xms"):
            init = to_bytes(a[4:])
        elif a.startswith("-Xmx"):
            mx = to_bytes(a[4:])
    if init is None and mx is None and MAJOR >= 8:
        auto = min(mem_total() // 2, 31 << 30)  # 8.x sizes the heap itself, Xms = Xmx
        return auto, auto
    # The JVM's defaults: initial 1/64, maximum 1/4 of RAM.
    return (init if init is not None else mem_total() // 64), (mx if mx is not None else mem_total() // 4)


def rlimit_text(v):
    return "unlimited" if v == resource.RLIM_INFINITY else str(v)


def host_caps_nofile(nofile):
    """Test clouds only: containers here cannot get past the host's hard limit
    (/etc/esbake-testcloud/host-nofile-cap, written by internal/testcloud), so
    the check judges what the systemd unit asks for (LimitNOFILE) instead."""
    try:
        cap = int(open("/etc/esbake-testcloud/host-nofile-cap").read())
    except (OSError, ValueError):
        return False
    if nofile < cap:
        return False
    try:
        asked = subprocess.run(["systemctl", "show", "-p", "LimitNOFILE", "--value", "elasticsearch.service"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
        ok = asked == "infinity" or int(asked) >= 65535
    except (OSError, ValueError, subprocess.SubprocessError):
        return False
    if ok:
        log("WARN", "stand-in: this test host caps open files at %d; elasticsearch.service asks for LimitNOFILE=%s, judged on that" % (cap, asked))
    return ok


def bootstrap_failures(s, heap, memory_locked):
    user = os.environ.get("USER") or str(os.getuid())
    out = []
    if heap[0] != heap[1]:
        out.append("initial heap size [%d] not equal to maximum heap size [%d]; this can cause resize pauses" % heap +
                   ("" if MAJOR >= 8 else " and prevents mlockall from locking the entire heap"))
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if nofile != resource.RLIM_INFINITY and nofile < 65535 and not host_caps_nofile(nofile):
        out.append("max file descriptors [%d] for elasticsearch process is too low, increase to at least [65535]" % nofile)
    if as_bool(s.get("bootstrap.memory_lock"), "bootstrap.memory_lock") and not memory_locked:
        out.append("memory locking requested for elasticsearch process but memory is not locked")
    nproc = resource.getrlimit(resource.RLIMIT_NPROC)[0]
    if nproc != resource.RLIM_INFINITY and nproc < 4096:
        out.append("max number of threads [%d] for user [%s] is too low, increase to at least [4096]" % (nproc, user))
    vas = resource.getrlimit(resource.RLIMIT_AS)[0]
    if vas != resource.RLIM_INFINITY:
        out.append("max size virtual memory [%s] for user [%s] is too low, increase to [unlimited]" % (rlimit_text(vas), user))
    fsize = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    if fsize != resource.RLIM_INFINITY:
        out.append("max file size [%s] for user [%s] is too low, increase to [unlimited]" % (rlimit_text(fsize), user))
    try:
        maps = int(open("/proc/sys/vm/max_map_count").read())
        if maps < 262144:
            out.append("max virtual memory areas vm.max_map_count [%d] is too low, increase to at least [262144]" % maps)
    except OSError:
        pass
    if MAJOR >= 7:
        keys = ["discovery.seed_hosts", "discovery.seed_providers", "cluster.initial_master_nodes"]
        legacy = ["discovery.zen.ping.unicast.hosts", "discovery.zen.hosts_provider"] if MAJOR == 7 else []
        if not any(k in s for k in keys + legacy):
            out.append("the default discovery settings are unsuitable for production use; at least one of [%s] must be configured" % ", ".join(keys))
    tls = transport_tls_failure(s)
    if tls:
        out.append(tls)
    return out


def security_enabled(s):
    # XPackSettings.SECURITY_ENABLED: default true (7.x: off in effect on a
    # basic or trial license unless set, XPackLicenseState.isSecurityEnabled).
    return as_bool(s.get("xpack.security.enabled", "true"), "xpack.security.enabled")


def transport_tls_failure(s):
    """The x-pack bootstrap checks on transport TLS (XPackSettings.TRANSPORT_SSL_ENABLED, default false)."""
    if as_bool(s.get("xpack.security.transport.ssl.enabled", "false"), "xpack.security.transport.ssl.enabled"):
        return None
    # 8.x: x-pack/plugin/core/src/main/java/org/elasticsearch/xpack/core/ssl/TransportTLSBootstrapCheck.java,
    # installed by Security.createComponents whenever security is enabled.
    if MAJOR >= 8 and security_enabled(s):
        return ("Transport SSL must be enabled if security is enabled. Please set [xpack.security.transport.ssl.enabled] to [true] "
                "or disable security by setting [xpack.security.enabled] to [false]")
    # 7.x: TLSLicenseBootstrapCheck with the license of the cluster state on
    # disk: none before the first formation, then the self-generated basic
    # one (xpack.license.self_generated.type), where TLS is required only when
    # security is explicitly enabled (XPackLicenseState.isTransportTlsRequired).
    if MAJOR == 7 and "xpack.security.enabled" in s and security_enabled(s) and cluster_formed(s) \
            and s.get("xpack.license.self_generated.type", "basic") == "basic":
        return ("Transport SSL must be enabled if security is enabled on a [basic] license. Please set [xpack.security.transport.ssl.enabled] "
                "to [true] or disable security by setting [xpack.security.enabled] to [false]")
    return None


def cluster_formed(s):
    data = as_list(s.get("path.data")) or [os.path.join(HOME, "data")]
    try:
        with open(os.path.join(data[0], "standin", "node-state.json")) as fh:
            return bool(json.load(fh).get("cluster_uuid"))
    except (OSError, ValueError):
        return False


def check_ssl_settings(s, keystore):
    """SSLService.validateServerConfiguration (x-pack/plugin/core/src/main/java/
    org/elasticsearch/xpack/core/ssl/SSLService.java, 8.x), run at start for
    transport and HTTP whether or not security is on: an enabled layer needs a
    key and certificate; a layer with settings (yml or keystore, as
    Settings.keySet holds both) needs its enabled key."""
    if MAJOR < 8:
        return
    for prefix in ("xpack.security.transport.ssl", "xpack.security.http.ssl"):
        enabled = prefix + ".enabled"
        if as_bool(s.get(enabled), enabled):
            if not s.get(prefix + ".keystore.path") and not (s.get(prefix + ".key") and s.get(prefix + ".certificate")):
                fail("invalid SSL configuration for %s - server ssl configuration requires a key and certificate, but these have not been configured; "
                     "you must set either [%s.keystore.path], or both [%s.key] and [%s.certificate]" % (prefix, prefix, prefix, prefix),
                     exc="org.elasticsearch.ElasticsearchSecurityException")
        elif enabled not in s:
            names = sorted(k for k in set(s) | set(keystore) if k.startswith(prefix))
            if names:
                fail("invalid configuration for %s - [%s] is not set, but the following settings have been configured in elasticsearch.yml : [%s]" % (
                    prefix, enabled, ",".join(names)), exc="org.elasticsearch.ElasticsearchSecurityException")


def report_bootstrap_failures(failures):
    n = len(failures)
    if MAJOR >= 8:
        lines = ["ERROR: [%d] bootstrap checks failed. You must address the points described in the following [%d] lines before starting Elasticsearch." % (n, n)]
        lines += ["bootstrap check failure [%d] of [%d]: %s" % (i + 1, n, f) for i, f in enumerate(failures)]
    else:
        lines = ["ERROR: [%d] bootstrap checks failed" % n] + ["[%d]: %s" % (i + 1, f) for i, f in enumerate(failures)]
    text = "\n".join(lines) + "\n"
    sys.stderr.write(text)
    sys.stderr.flush()
    sys.exit(78)  # ExitCodes.CONFIG


def lock_memory():
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.mlockall(1 | 2) == 0  # MCL_CURRENT | MCL_FUTURE
    except OSError:
        return False


# --- AWS: IMDS and the EC2 API (discovery-ec2) -------------------------------

IMDS = os.environ.get("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://169.254.169.254").rstrip("/")


def imds_get(path, v2=True):
    headers = {}
    if v2:
        req = urllib.request.Request(IMDS + "/latest/api/token", method="PUT", headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"})
        with urllib.request.urlopen(req, timeout=2) as r:
            headers["X-aws-ec2-metadata-token"] = r.read().decode()
    with urllib.request.urlopen(urllib.request.Request(IMDS + "/latest/" + path, headers=headers), timeout=2) as r:
        return r.read().decode()


def aws_credentials(keystore):
    ak, sk = keystore.get("discovery.ec2.access_key"), keystore.get("discovery.ec2.secret_key")
    if ak and sk:
        return ak, sk, keystore.get("discovery.ec2.session_token")
    if os.environ.get("AWS_ACCESS_KEY_ID") and os.environ.get("AWS_SECRET_ACCESS_KEY"):
        return os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"], os.environ.get("AWS_SESSION_TOKEN")
    try:
        # The SDK's instance profile provider (IMDSv2 on SDK v2 and recent v1).
        role = imds_get("meta-data/iam/security-credentials/").split()[0]
        c = json.loads(imds_get("meta-data/iam/security-credentials/" + role))
        return c["AccessKeyId"], c["SecretAccessKey"], c.get("Token")
    except (OSError, ValueError, IndexError, KeyError):
        return None


def sigv4(method, url, region, body, creds, service="ec2"):
    ak, sk, token = creds
    u = urllib.parse.urlsplit(url)
    now = datetime.datetime.utcnow()
    amzdate, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
    headers = {"host": u.netloc, "x-amz-date": amzdate, "content-type": "application/x-www-form-urlencoded; charset=utf-8"}
    if token:
        headers["x-amz-security-token"] = token
    signed = ";".join(sorted(headers))
    canonical = "\n".join([method, u.path or "/", u.query, "".join("%s:%s\n" % (k, headers[k]) for k in sorted(headers)),
                           signed, hashlib.sha256(body).hexdigest()])
    scope = "%s/%s/%s/aws4_request" % (day, region, service)
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amzdate, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    k = ("AWS4" + sk).encode()
    for part in (day, region, service, "aws4_request"):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    sig = hmac.new(k, to_sign.encode(), hashlib.sha256).hexdigest()
    headers["authorization"] = "AWS4-HMAC-SHA256 Credential=%s/%s, SignedHeaders=%s, Signature=%s" % (ak, scope, signed, sig)
    return headers


class EC2Seeds:
    """AwsEc2SeedHostsProvider: running/pending instances with the tags, their private IPs."""

    def __init__(self, s, keystore, port):
        self.s, self.keystore, self.port = s, keystore, port
        ep = os.environ.get("ES_STANDIN_EC2_ENDPOINT") or s.get("discovery.ec2.endpoint") or "ec2.us-east-1.amazonaws.com"
        if "://" not in ep:
            ep = s.get("discovery.ec2.protocol", "https") + "://" + ep
        self.endpoint = ep.rstrip("/") + "/"
        m = re.search(r"ec2\.([a-z0-9-]+)\.amazonaws", ep)
        self.region = m.group(1) if m else None
        self.tags = {k[len("discovery.ec2.tag."):]: as_list(v) for k, v in s.items() if k.startswith("discovery.ec2.tag.")}
        self.host_type = s.get("discovery.ec2.host_type", "private_ip")
        self.zones = as_list(s.get("discovery.ec2.availability_zones"))
        self.groups = as_list(s.get("discovery.ec2.groups"))
        self.cache, self.cached_at = [], 0
        self.cache_time = 10.0

    def addresses(self):
        if time.time() - self.cached_at < min(self.cache_time, 3.0):
            return self.cache
        self.cached_at = time.time()
        try:
            self.cache = self.fetch()
        except Exception as e:  # noqa: BLE001 - the plugin logs and returns no hosts
            log("INFO", "Exception while retrieving instance list from AWS API: %s" % e)
            self.cache = []
        return self.cache

    def fetch(self):
        creds = aws_credentials(self.keystore)
        if not creds:
            raise RuntimeError("Unable to load AWS credentials from any provider in the chain")
        region = self.region
        if not region:
            try:
                region = imds_get("meta-data/placement/region")
            except OSError:
                region = "us-east-1"
        params = [("Action", "DescribeInstances"), ("Version", "2016-11-15"),
                  ("Filter.1.Name", "instance-state-name"), ("Filter.1.Value.1", "running"), ("Filter.1.Value.2", "pending")]
        n = 2
        for key, values in sorted(self.tags.items()):
            params.append(("Filter.%d.Name" % n, "tag:" + key))
            params += [("Filter.%d.Value.%d" % (n, i + 1), v) for i, v in enumerate(values)]
            n += 1
        if self.zones:
            params.append(("Filter.%d.Name" % n, "availability-zone"))
            params += [("Filter.%d.Value.%d" % (n, i + 1), v) for i, v in enumerate(self.zones)]
            n += 1
        if self.groups:
            params.append(("Filter.%d.Name" % n, "instance.group-id" if self.groups[0].startswith("sg-") else "instance.group-name"))
            params += [("Filter.%d.Value.%d" % (n, i + 1), v) for i, v in enumerate(self.groups)]
        body = urllib.parse.urlencode(params).encode()
        req = urllib.request.Request(self.endpoint, data=body, method="POST", headers=sigv4("POST", self.endpoint, region, body, creds))
        try:
            with urllib.request.urlopen(req, timeout=5) as r:
                doc = ET.fromstring(r.read())
        except urllib.error.HTTPError as e:
            raise RuntimeError("DescribeInstances: HTTP %d: %s" % (e.code, e.read()[:300].decode(errors="replace")))
        field = {"private_ip": "privateIpAddress", "public_ip": "ipAddress", "private_dns": "privateDnsName", "public_dns": "dnsName"}.get(self.host_type, "privateIpAddress")
        out = []
        for inst in doc.findall(".//{*}instancesSet"):
            for item in inst.findall("{*}item"):
                addr = item.findtext("{*}" + field)
                if addr:
                    out.append((addr, self.port))
        return out


# --- node state on disk -----------------------------------------------------

def random_id(n=22):
    return base64.urlsafe_b64encode(os.urandom(16)).decode().rstrip("=")[:n]


class DiskState:
    """What the node keeps in path.data: its id, and the cluster it joined."""

    def __init__(self, data_path):
        self.dir = os.path.join(data_path, "standin")
        self.path = os.path.join(self.dir, "node-state.json")
        try:
            os.makedirs(self.dir, exist_ok=True)
        except OSError as e:
            fail("Failed to create node environment: unable to create %s: %s" % (self.dir, e))
        try:
            with open(self.path) as fh:
                d = json.load(fh)
        except FileNotFoundError:
            d = {}
        except ValueError as e:
            fail("failed to read node state %s: %s" % (self.path, e))
        self.node_id = d.get("node_id") or random_id()
        self.cluster_uuid = d.get("cluster_uuid")  # committed: the node joined this cluster
        self.voting_config = d.get("voting_config") or []
        self.term = d.get("term", 0)
        # Master-eligible nodes keep the cluster metadata (GatewayMetaState).
        self.metadata = d.get("metadata")
        self.save()

    def save(self):
        tmp = self.path + ".tmp"
        with open(tmp, "w") as fh:
            json.dump({"node_id": self.node_id, "cluster_uuid": self.cluster_uuid,
                       "voting_config": self.voting_config, "term": self.term, "metadata": self.metadata}, fh)
        os.replace(tmp, self.path)


# --- transport TLS (xpack.security.transport.ssl.*) -------------------------
# SSLService / SecurityNetty4Transport: with security on and
# xpack.security.transport.ssl.enabled, every transport connection is TLS
# with the node's key and certificate; peers are verified against
# certificate_authorities (verification_mode certificate: the chain, not the
# hostname; full: the hostname too), and client_authentication (default
# required) makes it mutual, so a node whose certificate another CA signed
# cannot connect, in either direction. Like SSLConfigurationReloader, changed
# key/certificate/CA files are picked up without a restart (checked per
# connection). PEM only (key, certificate, certificate_authorities); a
# PKCS#12 keystore.path is refused by this stand-in.

class TransportTLS:
    def __init__(self, s):
        pre = "xpack.security.transport.ssl."
        if s.get(pre + "keystore.path") or s.get(pre + "truststore.path"):
            fail("stand-in: PKCS#12 transport keystores are not supported; use key, certificate and certificate_authorities (PEM)")
        res = lambda p: p if os.path.isabs(p) else os.path.join(CONF, p)  # noqa: E731
        self.key = res(s.get(pre + "key", ""))
        self.cert = res(s.get(pre + "certificate", ""))
        self.cas = [res(p) for p in as_list(s.get(pre + "certificate_authorities"))]
        self.mode = s.get(pre + "verification_mode", "full")
        self.client_auth = s.get(pre + "client_authentication", "required")
        self.stamp, self.ctx = None, None
        self.lock = threading.Lock()
        self.contexts()  # fail at start on unreadable material, as SSLService does

    def contexts(self):
        files = [self.key, self.cert] + self.cas
        try:
            stamp = tuple(os.stat(f).st_mtime_ns for f in files)
        except OSError as e:
            fail("failed to load SSL configuration [xpack.security.transport.ssl] - cannot read configured file: %s" % e)
        with self.lock:
            if stamp != self.stamp:
                server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
                client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
                for c in (server, client):
                    c.load_cert_chain(self.cert, self.key)
                    for ca in self.cas:
                        c.load_verify_locations(ca)
                    c.verify_mode = ssl.CERT_REQUIRED
                server.verify_mode = {"required": ssl.CERT_REQUIRED, "optional": ssl.CERT_OPTIONAL}.get(self.client_auth, ssl.CERT_NONE)
                client.check_hostname = self.mode == "full"
                if self.mode == "none":
                    client.check_hostname, client.verify_mode = False, ssl.CERT_NONE
                if self.stamp is not None:
                    log("INFO", "reloaded the changed SSL material of [xpack.security.transport.ssl]")
                self.stamp, self.ctx = stamp, (server, client)
            return self.ctx


TLS = None  # TransportTLS when transport TLS is on


# --- transport: one JSON request and one JSON reply per connection -----------

def call(addr, msg, timeout=1.5):
    with socket.create_connection(addr, timeout=timeout) as raw:
        c = raw
        if TLS:
            try:
                c = TLS.contexts()[1].wrap_socket(raw, server_hostname=addr[0])
            except (ssl.SSLError, OSError) as e:
                log("WARN", "failed to establish a TLS transport connection to [%s:%d]: %s" % (addr[0], addr[1], e))
                raise
        c.settimeout(timeout)
        c.sendall((json.dumps(msg) + "\n").encode())
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = c.recv(65536)
            if not chunk:
                break
            buf += chunk
    return json.loads(buf.decode())


class Node:
    def __init__(self, s, args):
        self.s = s
        self.lock = threading.RLock()
        self.cluster_name = s.get("cluster.name", "elasticsearch")
        self.name = s.get("node.name", socket.gethostname())
        self.roles = node_roles(s)
        self.attributes = {k[len("node.attr."):]: v for k, v in s.items() if k.startswith("node.attr.")}
        self.single_node = s.get("discovery.type") == "single-node"
        data = as_list(s.get("path.data")) or [os.path.join(HOME, "data")]
        self.disk = DiskState(data[0])
        self.requirements = as_list(s.get("cluster.initial_master_nodes"))
        self.bootstrapping_permitted = MAJOR >= 7 and not self.single_node and bool(self.requirements)
        self.min_masters = int(s.get("discovery.zen.minimum_master_nodes", -1))
        self.awareness = as_list(s.get("cluster.routing.allocation.awareness.attributes"))
        self.state = None  # the applied cluster state: uuid, master, nodes, voting config, shards
        self.last_state = None  # the last applied one, kept when the master is lost
        self.table = None  # registered settings (validates PUT _cluster/settings)
        self.master_failures = 0
        self.peers = {}
        self.started = time.time()
        self.elected_at = 0
        self.rejoin_until = 0  # a new master waits for the last state's nodes before failing their shards
        self.last_warn = 0
        self.args = args

    # identity
    def info(self):
        return {"id": self.disk.node_id, "name": self.name, "ip": self.publish_ip,
                "transport_address": "%s:%d" % (self.publish_ip, self.transport_port),
                "http_address": "%s:%d" % (self.publish_ip, self.http_port),
                "roles": self.roles, "attributes": self.attributes, "version": VERSION,
                "settings": self.s, "jvm": self.jvm}

    def master_eligible(self, info=None):
        return "master" in (info or self.info())["roles"]

    # transport server side
    def handle(self, msg):
        if msg.get("action") == "join" and msg.get("cluster_name") == self.cluster_name and self.is_master():
            # The master connects back to a joining node before it validates
            # the join (7+: Coordinator.handleJoinRequest, connectToNode; 6.x:
            # ZenDiscovery.handleJoinRequest), so a node whose transport port
            # the master cannot reach never joins, however it reached the master.
            node = msg.get("node") or {}
            ip, _, p = node.get("transport_address", "").rpartition(":")
            try:
                call((ip, int(p)), {"action": "ping", "cluster_name": self.cluster_name, "node": self.info()}, timeout=1.0)
            except (OSError, ValueError) as e:
                log("WARN", "failed to connect to joining node {%s}{%s}: %s" % (node.get("name"), node.get("transport_address"), e))
                return {"error": "ConnectTransportException[[%s][%s] connect_exception]; the elected master could not connect back to the joining node" % (
                    node.get("name"), node.get("transport_address"))}
        with self.lock:
            if msg.get("cluster_name") != self.cluster_name:
                return {"error": "handshake failed: remote cluster name [%s] does not match local cluster name [%s]" % (msg.get("cluster_name"), self.cluster_name)}
            action = msg.get("action")
            st = self.state
            if action == "ping":
                return {"node": self.info(), "cluster_uuid": self.disk.cluster_uuid,
                        "master_id": st["master_id"] if st else None,
                        "master_address": st["nodes"][st["master_id"]]["transport_address"] if st else None,
                        "is_master": self.is_master(), "state_version": st["version"] if st else 0,
                        "voting_config": self.disk.voting_config, "bootstrapping": bool(self.disk.voting_config) and not self.disk.cluster_uuid}
            if not self.is_master():
                return {"error": "node [%s] is not the elected master" % self.name}
            node = msg["node"]
            if action == "join":
                theirs = msg.get("cluster_uuid")
                if MAJOR >= 7 and theirs and theirs != st["cluster_uuid"]:
                    if MAJOR >= 8:
                        return {"error": ("This node previously joined a cluster with UUID [%s] and is now trying to join a different cluster with UUID [%s]. "
                                          "This is forbidden and usually indicates an incorrect discovery or cluster bootstrapping configuration. "
                                          "Note that the cluster UUID persists across restarts and can only be changed by deleting the contents of the node's data path(s), "
                                          "which will also remove any data held by this node.") % (theirs, st["cluster_uuid"])}
                    return {"error": "join validation on cluster state with a different cluster uuid %s than local cluster uuid %s, rejecting" % (st["cluster_uuid"], theirs)}
                if node["id"] not in st["nodes"]:
                    log("INFO", "node-join[{%s}{%s}{%s} join existing leader]" % (node["name"], node["id"], node["transport_address"]))
                st["nodes"][node["id"]] = node
                st["seen"][node["id"]] = time.time()
                self.reconfigure()
                st["version"] += 1
                return {"state": self.public_state()}
            if action == "cluster_op":  # a master-node action sent on by another node
                return self.cluster_op(msg["op"], msg.get("args") or {})
            if action == "check":  # FollowersChecker / LeaderChecker in one
                if node["id"] not in st["nodes"]:
                    return {"error": "node [%s] is not in the cluster" % node["name"]}
                st["seen"][node["id"]] = time.time()
                return {"state": self.public_state()}
            return {"error": "unknown action [%s]" % action}

    def is_master(self):
        return bool(self.state) and self.state["master_id"] == self.disk.node_id

    def public_state(self):
        st = self.state
        return {k: st[k] for k in ("cluster_uuid", "master_id", "nodes", "version", "voting_config", "awareness", "term", "metadata", "routing")}

    def reconfigure(self):
        # Reconfigurator: voting config follows the master-eligible nodes, never below three once it had three.
        if MAJOR < 7:
            return
        st = self.state
        # Voting configuration exclusions: an excluded node leaves the
        # configuration whatever its size (Reconfigurator retiredNodeIds).
        excluded = {e["node_id"] for e in st["metadata"]["voting_exclusions"]}
        live = sorted(i for i, n in st["nodes"].items() if "master" in n["roles"] and i not in excluded)
        if excluded & set(st["voting_config"]) and live:
            st["voting_config"] = live
        elif len(live) >= 3 or len(live) >= len(st["voting_config"]):
            st["voting_config"] = live
        if self.disk.voting_config != st["voting_config"]:
            self.disk.voting_config = list(st["voting_config"])
            self.disk.save()

    # discovery loop
    def seed_addresses(self):
        port = self.transport_port
        out = []
        for h in as_list(self.s.get("discovery.seed_hosts")) + as_list(self.s.get("discovery.zen.ping.unicast.hosts")):
            host, _, p = h.rpartition(":") if re.search(r":\d+$", h) else (h, "", "")
            out.append((host, int(p) if p else port))
        if self.ec2:
            out += self.ec2.addresses()
        if self.state:
            for n in self.state["nodes"].values():
                ip, p = n["transport_address"].rsplit(":", 1)
                out.append((ip, int(p)))
        me = (self.publish_ip, self.transport_port)
        return sorted({a for a in out if a != me})

    def ping_all(self):
        found, lock = {}, threading.Lock()

        def one(addr):
            try:
                r = call(addr, {"action": "ping", "cluster_name": self.cluster_name, "node": self.info()})
            except (OSError, ValueError):
                return
            if "error" in r:
                log("WARN", "handshake with [%s:%d] failed: %s" % (addr[0], addr[1], r["error"]))
                return
            with lock:
                found[r["node"]["id"]] = r

        addrs = self.seed_addresses()
        ts = [threading.Thread(target=one, args=(a,), daemon=True) for a in addrs]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        # Peers share the master they know (PeerFinder), so a node discovers it too.
        for r in list(found.values()):
            if r["master_address"] and r["master_id"] not in found and r["master_id"] != self.disk.node_id:
                ip, p = r["master_address"].rsplit(":", 1)
                one((ip, int(p)))
        return found

    def run(self):
        while True:
            try:
                self.step()
            except Exception as e:  # noqa: BLE001 - keep the node up, as ES does
                log("WARN", "cluster formation step failed: %r" % e)
            time.sleep(1.0)

    def step(self):
        if self.is_master():
            self.lead()
            return
        if self.state:
            self.follow()
            if self.state:
                return
        peers = self.ping_all()
        with self.lock:
            self.peers = peers
        # An elected master: join it (JoinHelper); never bootstrap beside it.
        for r in sorted(peers.values(), key=lambda r: r["node"]["id"]):
            if r["is_master"] and self.join(r["node"]):
                return
        if MAJOR < 7:
            self.elect_zen(peers)
        else:
            self.elect_v7(peers)

    def join(self, master):
        ip, p = master["transport_address"].rsplit(":", 1)
        try:
            r = call((ip, int(p)), {"action": "join", "cluster_name": self.cluster_name, "node": self.info(),
                                    "cluster_uuid": self.disk.cluster_uuid})
        except (OSError, ValueError) as e:
            log("INFO", "failed to join {%s}{%s}: %s" % (master["name"], master["transport_address"], e))
            return False
        if "error" in r:
            self.warn("failed to join {%s}{%s}{%s} with JoinRequest{sourceNode={%s}}: %s" % (
                master["name"], master["id"], master["transport_address"], self.name, r["error"]))
            return False
        self.apply(r["state"], joined=True)
        log("INFO", "master node changed {previous [], current [{%s}{%s}{%s}]}, cluster UUID [%s]" % (
            master["name"], master["id"], master["transport_address"], r["state"]["cluster_uuid"]))
        return True

    def apply(self, st, joined=False):
        with self.lock:
            self.state = dict(st, seen={})
            self.last_state = self.state
            self.save_metadata()
            self.master_failures = 0
            changed = False
            if self.disk.cluster_uuid != st["cluster_uuid"]:
                self.disk.cluster_uuid, changed = st["cluster_uuid"], True
            if MAJOR >= 7 and self.disk.voting_config != st["voting_config"]:
                self.disk.voting_config, changed = list(st["voting_config"]), True
            if changed:
                self.disk.save()

    def follow(self):
        st = self.state
        m = st["nodes"].get(st["master_id"])
        ip, p = m["transport_address"].rsplit(":", 1)
        try:
            r = call((ip, int(p)), {"action": "check", "cluster_name": self.cluster_name, "node": self.info()})
            if "error" in r:
                raise OSError(r["error"])
            self.apply(r["state"])
        except (OSError, ValueError) as e:
            self.master_failures += 1
            if self.master_failures >= 3:  # cluster.fault_detection.leader_check.retry_count
                log("INFO", "master node [{%s}] failed, restarting discovery: %s" % (m["name"], e))
                with self.lock:
                    self.state = None

    def lead(self):
        with self.lock:
            st = self.state
            now = time.time()
            gone = [i for i in st["nodes"] if i != self.disk.node_id and now - st["seen"].get(i, now) > 5]
            for i in gone:
                log("INFO", "node-left[{%s}{%s} reason: followers check retry count exceeded]" % (st["nodes"][i]["name"], i))
                del st["nodes"][i]
            if gone:
                self.reconfigure()
                st["version"] += 1
            if now >= self.rejoin_until and self.model().reroute(st["nodes"], now):
                # Not while the nodes of the last state rejoin a new master.
                st["version"] += 1
                self.save_metadata()
            masters = [i for i, n in st["nodes"].items() if "master" in n["roles"]]
            if now - self.elected_at < 5:
                return  # the voters that elected it are joining (Coordinator: joins are the votes)
            if MAJOR < 7 and self.min_masters > 0 and len(masters) < self.min_masters:
                log("WARN", "not enough master nodes (has [%d], but needed [%d]), current nodes: %s" % (len(masters), self.min_masters, fmt_list(sorted(masters))))
                self.state = None
            elif MAJOR >= 7 and 2 * len(set(masters) & set(st["voting_config"])) <= len(st["voting_config"]):
                log("WARN", "stepping down as master: no quorum of the voting configuration %s" % fmt_list(st["voting_config"]))
                self.state = None

    def become_master(self, voting_config):
        with self.lock:
            if not self.disk.cluster_uuid:
                self.disk.cluster_uuid = random_id()
                log("INFO", "cluster UUID set to [%s]" % self.disk.cluster_uuid)
            self.disk.term += 1
            self.disk.voting_config = sorted(voting_config) if MAJOR >= 7 else []
            self.disk.save()
            me = self.info()
            self.elected_at = time.time()
            # The new master publishes on from the last committed state: its
            # nodes (dropped by the followers check if they do not come
            # back), metadata and routing table. Without one (a full
            # restart) the metadata on disk, every shard copy unassigned.
            last = self.last_state if self.last_state and self.last_state["cluster_uuid"] == self.disk.cluster_uuid else None
            if last:
                nodes = dict(last["nodes"])
                metadata, routing = json.loads(json.dumps(last["metadata"])), json.loads(json.dumps(last["routing"]))
            else:
                nodes, metadata, routing = {}, self.disk.metadata or shards.new_metadata(), None
            nodes[me["id"]] = me
            model = shards.Model(metadata, routing, MAJOR, self.s)
            if routing is None:
                model.restore_routing(time.time())
            self.state = {"cluster_uuid": self.disk.cluster_uuid, "master_id": me["id"], "nodes": nodes,
                          "version": (last["version"] + 1) if last else 1, "voting_config": self.disk.voting_config,
                          "awareness": self.awareness, "term": self.disk.term, "seen": {i: time.time() for i in nodes},
                          "metadata": model.meta, "routing": model.routing}
            self.last_state = self.state
            self.rejoin_until = self.elected_at + 5 if len(nodes) > 1 else 0
            log("INFO", "elected-as-master ([%d] nodes joined), term: %d, cluster UUID [%s]" % (1, self.disk.term, self.disk.cluster_uuid))

    def elect_zen(self, peers):
        # ZenDiscovery.findMaster / ElectMasterService: after ping_timeout, the
        # master-eligible node with the lowest id among those pinged wins, if at
        # least minimum_master_nodes master-eligible nodes were seen (-1: any).
        if time.time() - self.started < 3:  # discovery.zen.ping_timeout
            return
        if not self.master_eligible():
            return
        cands = [r["node"] for r in peers.values() if self.master_eligible(r["node"]) and not r["master_id"]] + [self.info()]
        if self.min_masters > 0 and len(cands) < self.min_masters:
            self.warn("not enough master nodes discovered during pinging (found [%s], but needed [%d]), pinging again" % (
                ", ".join("{%s}" % c["name"] for c in cands), self.min_masters))
            return
        if min(c["id"] for c in cands) == self.disk.node_id:
            self.become_master([])

    def matches(self, node, req):
        return req in (node["name"], node["transport_address"], node["ip"])

    def elect_v7(self, peers):
        if not self.master_eligible():
            self.warn("master not discovered yet: have discovered [%s]" % self.discovered_text(peers))
            return
        voters = {r["node"]["id"]: r["node"] for r in peers.values()
                  if self.master_eligible(r["node"]) and not r["master_id"]
                  and (not self.disk.cluster_uuid or r["cluster_uuid"] in (None, self.disk.cluster_uuid))}
        voters[self.disk.node_id] = self.info()
        if self.disk.cluster_uuid:
            if self.requirements and not getattr(self, "warned_locked", False):
                self.warned_locked = True
                log("WARN", "this node is locked into cluster UUID [%s] but [cluster.initial_master_nodes] is set to %s; "
                    "remove this setting to avoid possible data loss caused by subsequent cluster bootstrap attempts" % (self.disk.cluster_uuid, fmt_list(self.requirements)))
        elif self.single_node and not self.disk.voting_config:
            self.disk.voting_config = [self.disk.node_id]
        elif self.bootstrapping_permitted and not self.disk.voting_config:
            self.bootstrap(voters)
        config = self.disk.voting_config
        if not config:
            if not self.requirements:
                self.warn("master not discovered yet, this node has not previously joined a bootstrapped %scluster, and "
                          "[cluster.initial_master_nodes] is empty on this node: have discovered [%s]" % (
                              "(v7+) " if MAJOR == 7 else "", self.discovered_text(peers)))
            else:
                self.warn("master not discovered yet, this node has not previously joined a bootstrapped %scluster, and this node "
                          "must discover master-eligible nodes %s to bootstrap a cluster: have discovered [%s]" % (
                              "(v7+) " if MAJOR == 7 else "", fmt_list(self.requirements), self.discovered_text(peers)))
            return
        present = [i for i in config if i in voters]
        if 2 * len(present) <= len(config):
            self.warn("master not discovered or elected yet, an election requires at least %d nodes with ids from %s, have discovered [%s]" % (
                len(config) // 2 + 1, fmt_list(config), self.discovered_text(peers)))
            return
        if min(present) == self.disk.node_id:
            self.become_master(config)

    def bootstrap(self, voters):
        matched, unmatched = set(), []
        for req in self.requirements:
            hits = [i for i, n in voters.items() if self.matches(n, req)]
            if len(hits) > 1:
                log("WARN", "bootstrapping cancelled: requirement [%s] matches multiple nodes" % req)
                self.bootstrapping_permitted = False
                return
            if not hits:
                unmatched.append(req)
            matched.update(hits)
        if self.disk.node_id not in matched:
            log("INFO", "skipping cluster bootstrapping as local node does not match bootstrap requirements: %s" % fmt_list(self.requirements))
            self.bootstrapping_permitted = False
            return
        if 2 * len(matched) > len(self.requirements):
            self.bootstrapping_permitted = False
            self.disk.voting_config = sorted(matched) + ["{bootstrap-placeholder}-" + r for r in unmatched]
            self.disk.save()
            log("INFO", "setting initial configuration to VotingConfiguration{%s}" % ",".join(self.disk.voting_config))

    def discovered_text(self, peers):
        return ", ".join("{%s}{%s}{%s}" % (r["node"]["name"], r["node"]["id"], r["node"]["transport_address"]) for r in peers.values())

    def warn(self, msg):
        # ClusterFormationFailureHelper logs every 10s.
        if time.time() - self.last_warn >= 10:
            self.last_warn = time.time()
            log("WARN", msg)

    # HTTP views
    def cluster_nodes(self):
        with self.lock:
            if self.state:
                return self.state["master_id"], dict(self.state["nodes"]), self.state.get("awareness") or []
            return None, {self.disk.node_id: self.info()}, self.awareness

    # shards: the model on the elected master
    def model(self):
        st = self.state
        return shards.Model(st["metadata"], st["routing"], MAJOR, self.s, RECOVERY_SECONDS)

    def save_metadata(self):
        st = self.state
        if st and self.master_eligible() and self.disk.metadata != st["metadata"]:
            self.disk.metadata = json.loads(json.dumps(st["metadata"]))
            self.disk.save()

    def cluster_op(self, op, a):
        """A master-node action on the elected master: {status, body, state}."""
        with self.lock:
            if not self.is_master():
                return {"error": "node [%s] is not the elected master" % self.name}
            st, m = self.state, self.model()
            nodes, now = st["nodes"], time.time()
            try:
                changed = op in ("put_settings", "create_index", "add_voting_exclusions", "clear_voting_exclusions")
                if op == "health":
                    body = dict({"cluster_name": self.cluster_name}, **m.health(nodes))
                    body.update({"timed_out": False, "number_of_pending_tasks": 0, "number_of_in_flight_fetch": 0,
                                 "task_max_waiting_in_queue_millis": 0})
                    body = {k: body[k] for k in HEALTH_KEYS}
                elif op == "cluster_state":
                    body = {"cluster_name": self.cluster_name, "cluster_uuid": st["cluster_uuid"], "master_node": st["master_id"],
                            "nodes": {i: {"name": n["name"], "transport_address": n["transport_address"], "attributes": n["attributes"], "roles": n["roles"]}
                                      for i, n in nodes.items()}}
                    if MAJOR >= 7:
                        body["metadata"] = {"cluster_uuid": st["cluster_uuid"], "cluster_coordination": {
                            "term": st["term"], "last_committed_config": st["voting_config"], "last_accepted_config": st["voting_config"],
                            "voting_config_exclusions": st["metadata"]["voting_exclusions"]}}
                elif op == "get_settings":
                    body = m.get_settings()
                elif op == "put_settings":
                    body = m.update_settings(a.get("body"), self.table.check if self.table else (lambda k: None))
                elif op == "create_index":
                    body = m.create_index(a["index"], a.get("body"), random_id(), now)
                elif op == "index_active":
                    idx = st["metadata"]["indices"].get(a["index"])
                    body = {"active": bool(idx) and all(m.active_primary(a["index"], i) for i in range(idx["number_of_shards"]))}
                elif op == "cat_shards":
                    body = m.cat_shards(nodes)
                elif op == "cat_indices":
                    body = m.cat_indices()
                elif op == "add_voting_exclusions":
                    body = self.add_voting_exclusions(a)
                elif op == "exclusions_pending":
                    body = {"pending": [e for e in st["metadata"]["voting_exclusions"] if e["node_id"] in nodes]}
                elif op == "clear_voting_exclusions":
                    st["metadata"]["voting_exclusions"] = []
                    body = {}
                else:
                    return {"error": "unknown cluster op [%s]" % op}
            except shards.ESError as e:
                return {"status": e.status, "body": e.body()}
            if changed:
                m.reroute(nodes, now)
                self.reconfigure()
                st["version"] += 1
                self.save_metadata()
            return {"status": 200, "body": body, "state": self.public_state()}

    def add_voting_exclusions(self, a):
        # AddVotingConfigExclusionsRequest.resolveVotingConfigExclusions
        st = self.state
        masters = {i: n for i, n in st["nodes"].items() if "master" in n["roles"]}
        names, ids, desc = a.get("node_names"), a.get("node_ids"), a.get("node_description")
        if desc is not None:
            new = [{"node_id": i, "node_name": n["name"]} for i, n in sorted(masters.items())
                   if desc in ("_all", "_master") or shards.simple_match(desc, n["name"]) or desc == i or desc == n["ip"]]
            if not new:
                raise shards.ESError(400, "illegal_argument_exception", "add voting config exclusions request for [%s] matched no master-eligible nodes" % desc)
        elif (names is None) == (ids is None):
            raise shards.ESError(400, "action_request_validation_exception" if MAJOR >= 8 else "illegal_argument_exception",
                                 ("Validation Failed: 1: " if MAJOR >= 8 else "") + "Please set node identifiers correctly. One and only one of [node_name], [node_names] and [node_ids] has to be set" + (";" if MAJOR >= 8 else ""))
        elif names is not None:
            new = []
            for nm in [x for x in names.split(",") if x]:
                hit = next((i for i, n in masters.items() if n["name"] == nm), None)
                new.append({"node_id": hit or "_absent_", "node_name": nm})
        else:
            new = []
            for i in [x for x in ids.split(",") if x]:
                new.append({"node_id": i, "node_name": masters[i]["name"] if i in masters else "_absent_"})
        cur = st["metadata"]["voting_exclusions"]
        limit = int(self.model().setting("cluster.max_voting_config_exclusions", 10))
        add = [e for e in new if e not in cur]
        if len(cur) + len(add) > limit:
            raise shards.ESError(400, "illegal_argument_exception",
                                 "add voting config exclusions request for %s would add [%d] exclusions to the existing [%d] which would exceed the maximum of [%d] set by [cluster.max_voting_config_exclusions]" % (
                                     fmt_list([e["node_name"] for e in new]), len(add), len(cur), limit))
        cur.extend(add)
        return {}

    def forward(self, op, args=None):
        """Runs a master-node action on the elected master (here or over the
        transport) and applies the state it returns; (status, body), 503
        master_not_discovered_exception without a master."""
        r = None
        with self.lock:
            st = self.state
            if st and self.is_master():
                r = self.cluster_op(op, args or {})
                master = None
            else:
                master = st["nodes"].get(st["master_id"]) if st else None
        if master is not None:
            ip, p = master["transport_address"].rsplit(":", 1)
            try:
                r = call((ip, int(p)), {"action": "cluster_op", "cluster_name": self.cluster_name, "node": self.info(), "op": op, "args": args or {}}, timeout=5)
            except (OSError, ValueError):
                r = None
        if r is None or "error" in r:
            return 503, {"error": {"root_cause": [{"type": "master_not_discovered_exception", "reason": None}],
                                   "type": "master_not_discovered_exception", "reason": None}, "status": 503}
        if r.get("state") and not self.is_master():
            with self.lock:
                if self.state and r["state"]["version"] >= self.state["version"]:
                    self.apply(r["state"])
        return r["status"], r["body"]


HEALTH_KEYS = ["cluster_name", "status", "timed_out", "number_of_nodes", "number_of_data_nodes", "active_primary_shards",
               "active_shards", "relocating_shards", "initializing_shards", "unassigned_shards", "delayed_unassigned_shards",
               "number_of_pending_tasks", "number_of_in_flight_fetch", "task_max_waiting_in_queue_millis",
               "active_shards_percent_as_number"]
# How long a recovery (a new replica, a relocation) takes: no documents are
# copied, but it is never instant, so tests can see shards move.
RECOVERY_SECONDS = float(os.environ.get("ES_STANDIN_RECOVERY_SECONDS", "1"))


def node_view(n, master_id):
    v = {"name": n["name"], "transport_address": n["transport_address"], "host": n["ip"], "ip": n["ip"],
         "version": n["version"], "roles": n["roles"], "attributes": n["attributes"],
         "settings": nest(n["settings"]), "jvm": n["jvm"],
         "http": {"publish_address": n["http_address"]}}
    if master_id is not None:
        v["master"] = n["id"] == master_id  # not in Elastic's answer; /_cat/master is
    return v


def nest(flat):
    out = {}
    for key, value in flat.items():
        cur = out
        parts = key.split(".")
        for p in parts[:-1]:
            nxt = cur.setdefault(p, {})
            if not isinstance(nxt, dict):
                break
            cur = nxt
        else:
            cur[parts[-1]] = value
    return out


def parse_duration(v, default):
    # TimeValue.parseTimeValue, the units a request uses.
    if v is None:
        return default
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)?", v)
    if not m:
        raise shards.ESError(400, "parse_exception", "failed to parse setting [timeout] with value [%s] as a time value: unit is missing or unrecognized" % v)
    return float(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, None: 0.001}[m.group(2)]


CAT_DEFAULTS = {"shards": ["index", "shard", "prirep", "state", "docs", "store", "ip", "node"],
                "indices": ["health", "status", "index", "uuid", "pri", "rep", "docs.count", "docs.deleted", "store.size", "pri.store.size"]}
STATUS_RANK = {"green": 0, "yellow": 1, "red": 2}


def http_handler(node):
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            self.route("GET")

        def do_PUT(self):
            self.route("PUT")

        def do_POST(self):
            self.route("POST")

        def do_DELETE(self):
            self.route("DELETE")

        def do_HEAD(self):
            self.route("HEAD")

        def route(self, method):
            raw_path, _, query = self.path.partition("?")
            path = raw_path.rstrip("/") or "/"
            q = {k: v[-1] for k, v in urllib.parse.parse_qs(query, keep_blank_values=True).items()}
            n = int(self.headers.get("Content-Length") or 0)
            data = self.rfile.read(n) if n else b""
            body = None
            if data.strip():
                ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip()
                if ctype not in ("application/json", "application/x-ndjson", "application/yaml", "application/smile", "application/cbor") \
                        and not ctype.startswith("application/vnd.elasticsearch+json"):
                    # RestController: a body needs a supported Content-Type.
                    return self.reply(406, {"error": "Content-Type header [%s] is not supported" % ctype, "status": 406})
                try:
                    body = json.loads(data)
                except ValueError as e:
                    return self.reply(400, shards.ESError(400, "x_content_parse_exception" if MAJOR >= 7 else "json_parse_exception", "failed to parse the request body: %s" % e).body())
            try:
                return self.dispatch(method, path, q, body)
            except shards.ESError as e:
                return self.reply(e.status, e.body())

        def dispatch(self, method, path, q, body):
            parts = [urllib.parse.unquote(x) for x in path.split("/") if x]
            if method == "GET" and path == "/":
                return self.root()
            if method == "GET" and parts[:2] == ["_cluster", "health"]:
                return self.health(q)
            if method == "GET" and parts[:2] == ["_cluster", "state"]:
                return self.cluster_state()
            if method == "GET" and path == "/_cat/master":
                master, nodes, _ = node.cluster_nodes()
                if master is None:
                    return self.no_master()
                m = nodes[master]
                return self.reply(200, "%s %s %s %s\n" % (m["id"], m["ip"], m["ip"], m["name"]), "text/plain")
            if method == "GET" and parts[:1] == ["_nodes"]:
                return self.nodes_info(path)
            if path == "/_cluster/settings" and method in ("GET", "PUT"):
                if method == "GET":
                    code, r = node.forward("get_settings")
                else:
                    code, r = node.forward("put_settings", {"body": body})
                if code != 200:
                    return self.reply(code, r)
                flat = parse_bool_param(q.get("flat_settings"), False)
                return self.reply(200, {k: (v if flat or k == "acknowledged" else shards.nest(v)) for k, v in r.items()})
            if method == "GET" and parts[:1] == ["_cat"] and len(parts) == 2 and parts[1] in CAT_DEFAULTS:
                code, rows = node.forward("cat_" + parts[1])
                if code != 200:
                    return self.reply(code, rows)
                return self.cat(rows, q, CAT_DEFAULTS[parts[1]])
            if parts[:2] == ["_cluster", "voting_config_exclusions"] and MAJOR >= 7:
                return self.voting(method, parts[2:], q)
            if method == "PUT" and len(parts) == 1 and not parts[0].startswith("_"):
                return self.create_index(parts[0], body, q)
            if method == "PUT" and len(parts) == 1:
                shards.validate_index_name(parts[0])  # PUT /_x: an index name starting with '_'
            return self.reply(400, {"error": "no handler found for uri [%s] and method [%s]" % (self.path, method), "status": 400})

        def no_master(self):
            return self.reply(503, {"error": {"root_cause": [{"type": "master_not_discovered_exception", "reason": None}],
                                              "type": "master_not_discovered_exception", "reason": None}, "status": 503})

        def root(self):
            master, _, _ = node.cluster_nodes()
            uuid = node.disk.cluster_uuid if master else (node.disk.cluster_uuid or "_na_")
            return self.reply(200, {"name": node.name, "cluster_name": node.cluster_name, "cluster_uuid": uuid,
                                    "version": {"number": VERSION, "build_flavor": "default"},
                                    "tagline": "stand-in, not the real Elasticsearch"})

        def health(self, q):
            # wait_for_status / wait_for_no_relocating_shards / wait_for_nodes
            # until timeout (default 30s); 408 with timed_out when not met.
            want = q.get("wait_for_status")
            if want is not None and want not in STATUS_RANK:
                raise shards.ESError(400, "illegal_argument_exception", "unknown cluster health status [%s]" % want)
            no_relo = parse_bool_param(q.get("wait_for_no_relocating_shards"), False)
            want_nodes = q.get("wait_for_nodes")
            waiting = want is not None or no_relo or want_nodes is not None
            deadline = time.time() + parse_duration(q.get("timeout"), 30.0)
            while True:
                code, h = node.forward("health")
                if code != 200:
                    return self.reply(code, h)
                ok = (want is None or STATUS_RANK[h["status"]] <= STATUS_RANK[want]) and (not no_relo or h["relocating_shards"] == 0) \
                    and (want_nodes is None or nodes_match(want_nodes, h["number_of_nodes"]))
                if ok or not waiting:
                    return self.reply(200, h)
                if time.time() >= deadline:
                    h["timed_out"] = True
                    return self.reply(408, h)
                time.sleep(0.2)

        def cluster_state(self):
            # TransportClusterStateAction: the master's state, unless local=true.
            code, body = node.forward("cluster_state")
            return self.reply(code, body)

        def nodes_info(self, path):
            master, nodes, _ = node.cluster_nodes()
            uuid = node.disk.cluster_uuid if master else (node.disk.cluster_uuid or "_na_")
            sel = path.split("/")[2] if path.count("/") >= 2 else "_all"
            if sel in ("_local", node.disk.node_id, node.name):
                nodes = {node.disk.node_id: node.info()}
            return self.reply(200, {"_nodes": {"total": len(nodes), "successful": len(nodes), "failed": 0},
                                    "cluster_name": node.cluster_name, "cluster_uuid": uuid,
                                    "nodes": {i: node_view(n, master) for i, n in nodes.items()}})

        def cat(self, rows, q, defaults):
            cols = [c.strip() for c in q["h"].split(",")] if q.get("h") else defaults
            rows = [{c: r.get(c) for c in cols} for r in rows]
            if q.get("format") == "json":
                return self.reply(200, rows)
            text = "".join(" ".join("" if r[c] is None else str(r[c]) for c in cols) + "\n" for r in rows)
            return self.reply(200, text, "text/plain; charset=UTF-8")

        def create_index(self, name, body, q):
            code, r = node.forward("create_index", {"index": name, "body": body})
            if code != 200:
                return self.reply(code, r)
            # wait_for_active_shards (default 1: the primaries) until timeout.
            deadline = time.time() + parse_duration(q.get("timeout"), 30.0)
            while time.time() < deadline:
                c, a = node.forward("index_active", {"index": name})
                if c == 200 and a["active"]:
                    r["shards_acknowledged"] = True
                    break
                time.sleep(0.2)
            return self.reply(200, r)

        def voting(self, method, rest, q):
            # TransportAddVotingConfigExclusionsAction / TransportClearVotingConfigExclusionsAction
            if method == "POST":
                args = {"node_names": q.get("node_names"), "node_ids": q.get("node_ids")}
                if rest:
                    if MAJOR >= 8 or len(rest) != 1:
                        return self.reply(400, {"error": "no handler found for uri [%s] and method [%s]" % (self.path, method), "status": 400})
                    args = {"node_description": rest[0]}  # 7.x, deprecated from 7.8
                code, r = node.forward("add_voting_exclusions", args)
                return self.reply(code, r)
            if method == "DELETE" and not rest:
                if parse_bool_param(q.get("wait_for_removal"), True):
                    deadline = time.time() + parse_duration(q.get("timeout"), 30.0)
                    while True:
                        code, r = node.forward("exclusions_pending")
                        if code != 200:
                            return self.reply(code, r)
                        if not r["pending"]:
                            break
                        if time.time() >= deadline:
                            return self.reply(500, shards.ESError(500, "elasticsearch_timeout_exception",
                                                                  "timed out waiting for removal of nodes; if nodes should not be removed, set waitForRemoval to false. %s" % (
                                                                      "[" + ", ".join("{%s}{%s}" % (e["node_name"], e["node_id"]) for e in r["pending"]) + "]")).body())
                        time.sleep(0.2)
                code, r = node.forward("clear_voting_exclusions")
                return self.reply(code, r)
            return self.reply(405, {"error": "Incorrect HTTP method for uri [%s] and method [%s], allowed: [POST, DELETE]" % (self.path, method), "status": 405})

        def reply(self, code, body, ctype="application/json"):
            data = (json.dumps(body) if ctype == "application/json" else body).encode()
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        def log_message(self, *args):
            pass
    return Handler


def parse_bool_param(v, default):
    return shards.parse_bool_param(v, default)


def nodes_match(expr, n):
    # ClusterHealthRequest wait_for_nodes: N, >=N, <=N, >N, <N, ge(N)...
    m = re.fullmatch(r"(>=|<=|>|<|ge\(|le\(|gt\(|lt\()?(\d+)\)?", expr)
    if not m:
        raise shards.ESError(400, "illegal_argument_exception", "wait_for_nodes [%s] is not a number or comparison" % expr)
    op, k = m.group(1) or "", int(m.group(2))
    return {"": n == k, ">=": n >= k, "ge(": n >= k, "<=": n <= k, "le(": n <= k, ">": n > k, "gt(": n > k, "<": n < k, "lt(": n < k}[op]


def main():
    args = sys.argv[1:]
    jvm_args = [a for a in args if a.startswith("-X")]
    os.environ.setdefault("HOSTNAME", socket.gethostname())  # bin/elasticsearch-env exports it
    plugins = set(os.listdir(os.path.join(HOME, "plugins"))) if os.path.isdir(os.path.join(HOME, "plugins")) else set()
    s = load_yml(os.path.join(CONF, "elasticsearch.yml"))

    table = Table(os.path.join(LIB, "standin-settings.json"), plugins)
    for key in sorted(s):
        err = table.check(key)
        if err:
            fail(err)
    if MAJOR >= 7:
        ims = as_list(s.get("cluster.initial_master_nodes"))
        if s.get("discovery.type") == "single-node" and "cluster.initial_master_nodes" in s:
            fail("setting [cluster.initial_master_nodes] is not allowed when [discovery.type] is set to [single-node]")
        if len(set(ims)) != len(ims):
            fail("setting [cluster.initial_master_nodes] contains duplicates: [%s]" % ", ".join(ims))
    dtype = s.get("discovery.type", "zen" if MAJOR < 8 else "multi-node")
    if dtype not in (("zen", "single-node") if MAJOR < 7 else ("zen", "multi-node", "single-node")):
        fail("Unknown discovery type [%s]" % dtype)
    provider_key = "discovery.zen.hosts_provider" if MAJOR < 7 else "discovery.seed_providers"
    providers = as_list(s.get(provider_key)) + (as_list(s.get("discovery.zen.hosts_provider")) if MAJOR == 7 else [])
    for p in providers:
        if p not in ("settings", "file") and not (p == "ec2" and "discovery-ec2" in plugins):
            fail("Unknown zen hosts provider [%s]" % p if MAJOR < 7 else "Unknown seed providers [%s]" % p)

    node_roles(s)  # DiscoveryNode.getRolesFromSettings validates roles before bootstrap checks
    keystore = read_keystore()  # Bootstrap loads the keystore before the node is built
    check_ssl_settings(s, keystore)  # SSLService, built with the node, before the bootstrap checks

    # Heap, limits and memory lock, as the JVM and Bootstrap would see them.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:  # the JVM raises the soft limit to the hard one (-XX:+MaxFDLimit)
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            pass
    heap = heap_from_args(jvm_args)
    memory_locked = as_bool(s.get("bootstrap.memory_lock"), "bootstrap.memory_lock") and lock_memory()
    if as_bool(s.get("bootstrap.memory_lock"), "bootstrap.memory_lock") and not memory_locked:
        log("WARN", "Unable to lock JVM Memory: error=12, reason=Cannot allocate memory")

    bind_t = resolve_host(s.get("transport.bind_host") or s.get("transport.host") or s.get("network.bind_host") or s.get("network.host"), "transport")
    bind_h = resolve_host(s.get("http.bind_host") or s.get("http.host") or s.get("network.bind_host") or s.get("network.host"), "http")
    publish = resolve_host(s.get("transport.publish_host") or s.get("network.publish_host") or s.get("transport.host") or s.get("network.host"), "publish")
    if publish == "0.0.0.0":
        publish = next((a for a in local_addresses() if not a.startswith("127.")), "127.0.0.1")
    http_port = int(s.get("http.port", 9200))
    transport_port = int(s.get("transport.port", s.get("transport.tcp.port", 9300)))

    # BootstrapChecks.enforceLimits: production mode once transport leaves loopback.
    production = (not is_loopback(bind_t) or not is_loopback(publish)) and dtype != "single-node"
    production = production or os.environ.get("ES_JAVA_OPTS", "").find("-Des.enforce.bootstrap.checks=true") >= 0
    if production:
        failures = bootstrap_failures(s, heap, memory_locked)
        if failures:
            report_bootstrap_failures(failures)
        log("INFO", "bound or publishing to a non-loopback address, enforcing bootstrap checks")
    else:
        log("INFO", "bootstrap checks not enforced: transport is bound to loopback (development mode)")

    node = Node(s, args)
    node.table = table
    node.publish_ip, node.transport_port, node.http_port = publish, transport_port, http_port
    node.jvm = {"input_arguments": jvm_args, "mem": {"heap_init_in_bytes": heap[0], "heap_max_in_bytes": heap[1]}}
    node.ec2 = EC2Seeds(s, keystore, transport_port) if "ec2" in providers else None
    if as_bool(s.get("cloud.node.auto_attributes"), "cloud.node.auto_attributes"):
        # Ec2DiscoveryPlugin.getAvailabilityZoneNodeAttributes: IMDSv1 before 8.2
        # (elastic/elasticsearch#84410), so an IMDSv2-only instance yields nothing.
        try:
            az = imds_get("meta-data/placement/availability-zone", v2=(MAJOR, MINOR) >= (8, 2))
            node.attributes.setdefault("aws_availability_zone", az)
        except (OSError, urllib.error.HTTPError) as e:
            log("ERROR", "failed to get metadata for [placement/availability-zone]: %s" % e)

    class Transport(socketserver.ThreadingTCPServer):
        daemon_threads = True
        allow_reuse_address = True
        address_family = socket.AF_INET6 if ":" in bind_t else socket.AF_INET

        def handle_error(self, request, client_address):
            if isinstance(sys.exc_info()[1], OSError):
                return  # a refused TLS handshake, logged by the handler
            super().handle_error(request, client_address)

    global TLS
    # Security on: 8.x by default; 7.x (basic license) only when set.
    sec_on = security_enabled(s) if MAJOR >= 8 else as_bool(s.get("xpack.security.enabled", "false"), "xpack.security.enabled")
    if sec_on and as_bool(s.get("xpack.security.transport.ssl.enabled", "false"), "xpack.security.transport.ssl.enabled"):
        TLS = TransportTLS(s)
        log("INFO", "transport TLS on (verification_mode %s, client_authentication %s)" % (TLS.mode, TLS.client_auth))

    class TransportHandler(socketserver.StreamRequestHandler):
        def setup(self):
            if TLS:
                try:
                    self.request = TLS.contexts()[0].wrap_socket(self.request, server_side=True)
                except (ssl.SSLError, OSError) as e:
                    log("WARN", "client did not trust this server's certificate or presented none this server trusts, closing connection from [%s]: %s" % (self.client_address[0], e))
                    self.request.close()
                    raise ConnectionAbortedError()
            super().setup()

        def handle(self):
            try:
                line = self.rfile.readline(1 << 20)
                reply = node.handle(json.loads(line))
            except (ValueError, KeyError) as e:
                reply = {"error": "bad request: %r" % e}
            self.wfile.write((json.dumps(reply) + "\n").encode())

    class HTTP(http.server.ThreadingHTTPServer):
        address_family = socket.AF_INET6 if ":" in bind_h else socket.AF_INET

    try:
        tsrv = Transport((bind_t, transport_port), TransportHandler)
        hsrv = HTTP((bind_h, http_port), http_handler(node))
    except OSError as e:
        fail("BindTransportException: Failed to bind to %s: %s" % (transport_port, e))
    threading.Thread(target=tsrv.serve_forever, daemon=True).start()
    log("INFO", "stand-in Elasticsearch %s node [%s] id [%s] listening on %s:%d (transport %s:%d, publish %s), heap %s, roles %s" % (
        VERSION, node.name, node.disk.node_id, bind_h, http_port, bind_t, transport_port, publish, " ".join(jvm_args), node.roles))
    if node.disk.cluster_uuid:
        log("INFO", "cluster UUID [%s]" % node.disk.cluster_uuid)
        # ClusterBootstrapService.logBootstrapState: at start, before discovery.
        if MAJOR >= 7 and node.requirements:
            node.warned_locked = True
            log("WARN", "this node is locked into cluster UUID [%s] but [cluster.initial_master_nodes] is set to %s; "
                "remove this setting to avoid possible data loss caused by subsequent cluster bootstrap attempts" % (node.disk.cluster_uuid, fmt_list(node.requirements)))
    threading.Thread(target=node.run, daemon=True).start()
    hsrv.serve_forever()


if __name__ == "__main__":
    main()
