#!/usr/bin/env python3
# Stand-in, not the real package's security auto-configuration. The real 8.x
# .deb/.rpm postinst runs AutoConfigureNode (x-pack security cli) on a fresh
# install; this does what it leaves behind, with real key material from
# openssl (sources: distribution/packages/src/common/scripts/postinst,
# x-pack/plugin/security/cli/.../AutoConfigureNode.java, and the docs page
# "Start the Elastic Stack with security enabled automatically"):
#  - certs/http_ca.crt (the HTTP CA), certs/http.p12 (the node's HTTP key and
#    certificate, plus the CA's key as entry "http_ca"), certs/transport.p12
#    (transport key and certificate signed by its own CA);
#  - keystore entries xpack.security.http.ssl.keystore.secure_password,
#    xpack.security.transport.ssl.keystore.secure_password,
#    xpack.security.transport.ssl.truststore.secure_password and
#    autoconfiguration.password_hash (the elastic user's password hash);
#  - the "BEGIN SECURITY AUTO CONFIGURATION" block appended to
#    elasticsearch.yml: xpack.security.*, cluster.initial_master_nodes:
#    ["${HOSTNAME}"] and http.host: 0.0.0.0;
#  - the generated elastic password, printed once.
# Like the real one it does nothing when security is already configured.
import base64
import datetime
import hashlib
import hmac
import os
import secrets
import socket
import string
import subprocess
import sys
import tempfile

CONF = os.environ.get("ES_PATH_CONF", "/etc/elasticsearch")
HOME = os.environ.get("ES_HOME", "/usr/share/elasticsearch")
YML = os.path.join(CONF, "elasticsearch.yml")
CERTS = os.path.join(CONF, "certs")


def already_configured():
    if os.path.exists(CERTS):
        return "the certs directory already exists"
    for line in open(YML):
        s = line.strip()
        if s.startswith("xpack.security.") and not s.startswith("#"):
            return "security is already configured in elasticsearch.yml"
    return None


def password(n=20):
    chars = string.ascii_letters + string.digits + "*-_=+"
    return "".join(secrets.choice(chars) for _ in range(n))


def openssl(*args):
    subprocess.run(["openssl", *args], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


# --- PKCS#12 with two private keys ------------------------------------------
# The openssl CLI puts one private key in a PKCS#12 file; http.p12 holds two
# (the node's and the CA's). Two files are made with openssl and their
# AuthenticatedSafe contents joined, with a new SHA-256 MAC (RFC 7292).

def der_read(b, i):
    tag, n = b[i], b[i + 1]
    i += 2
    if n & 0x80:
        k = n & 0x7F
        n = int.from_bytes(b[i:i + k], "big")
        i += k
    return tag, b[i:i + n], i + n


def der(tag, content):
    n = len(content)
    if n < 0x80:
        head = bytes([n])
    else:
        nb = n.to_bytes((n.bit_length() + 7) // 8, "big")
        head = bytes([0x80 | len(nb)]) + nb
    return bytes([tag]) + head + content


def der_items(content):
    out, i = [], 0
    while i < len(content):
        start = i
        _, _, i = der_read(content, i)
        out.append(content[start:i])
    return out


def p12_kdf(pw, salt, ident, iterations, n):
    u, v = 32, 64  # SHA-256
    p = pw.encode("utf-16-be") + b"\0\0"

    def fill(x):
        m = v * ((len(x) + v - 1) // v)
        return (x * (m // len(x) + 1))[:m]
    a = hashlib.sha256(bytes([ident]) * v + fill(salt) + fill(p)).digest()
    for _ in range(iterations - 1):
        a = hashlib.sha256(a).digest()
    assert n <= u
    return a[:n]


def p12_parts(path):
    b = open(path, "rb").read()
    _, pfx, _ = der_read(b, 0)
    items = der_items(pfx)
    _, ci, _ = der_read(items[1], 0)
    oid, wrapped = der_items(ci)
    _, octets, _ = der_read(wrapped, 0)
    _, octet_string, _ = der_read(octets, 0)
    _, safes, _ = der_read(octet_string, 0)
    _, mac, _ = der_read(items[2], 0)
    _, digest_info, _ = der_read(der_items(mac)[0], 0)
    return oid, der_items(safes), der_items(digest_info)[0]


def p12_join(paths, pw, out):
    oid, safes, alg = None, [], None
    for p in paths:
        o, s, a = p12_parts(p)
        oid, alg = oid or o, alg or a
        safes += s
    auth = der(0x30, b"".join(safes))
    salt, iterations = os.urandom(8), 2048
    mac = hmac.new(p12_kdf(pw, salt, 3, iterations, 32), auth, hashlib.sha256).digest()
    pfx = der(0x30, der(0x02, b"\x03") + der(0x30, oid + der(0xA0, der(0x04, auth))) +
              der(0x30, der(0x30, alg + der(0x04, mac)) + der(0x04, salt) + der(0x02, iterations.to_bytes(2, "big"))))
    with open(out, "wb") as fh:
        fh.write(pfx)


# --- the auto-configuration --------------------------------------------------

def host_addresses():
    ips = {"127.0.0.1", "::1"}
    try:
        ips.update(socket.gethostbyname_ex(socket.gethostname())[2])
    except OSError:
        pass
    return sorted(ips)


def make_certs(tmp, http_pw, transport_pw):
    host = socket.gethostname()
    j = lambda *p: os.path.join(tmp, *p)  # noqa: E731
    ca_ext = ["-addext", "basicConstraints=critical,CA:true", "-addext", "keyUsage=critical,keyCertSign,cRLSign"]
    for name, cn in (("http_ca", "Elasticsearch security auto-configuration HTTP CA"),
                     ("transport_ca", "Elasticsearch security auto-configuration transport CA")):
        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", j(name + ".key"), "-out", j(name + ".crt"),
                "-days", "1095", "-subj", "/CN=" + cn, *ca_ext)
    san = ",".join(["DNS:" + host, "DNS:localhost"] + ["IP:" + ip for ip in host_addresses()])
    for name, ca in (("http", "http_ca"), ("transport", "transport_ca")):
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", j(name + ".key"), "-out", j(name + ".csr"), "-subj", "/CN=" + host)
        with open(j(name + ".ext"), "w") as fh:
            fh.write("subjectAltName=%s\nextendedKeyUsage=serverAuth,clientAuth\n" % san)
        openssl("x509", "-req", "-in", j(name + ".csr"), "-CA", j(ca + ".crt"), "-CAkey", j(ca + ".key"), "-CAcreateserial",
                "-out", j(name + ".crt"), "-days", "730", "-extfile", j(name + ".ext"))
    openssl("pkcs12", "-export", "-inkey", j("http.key"), "-in", j("http.crt"), "-certfile", j("http_ca.crt"),
            "-name", "http", "-out", j("http-only.p12"), "-passout", "pass:" + http_pw)
    openssl("pkcs12", "-export", "-inkey", j("http_ca.key"), "-in", j("http_ca.crt"),
            "-name", "http_ca", "-out", j("ca-only.p12"), "-passout", "pass:" + http_pw)
    p12_join([j("http-only.p12"), j("ca-only.p12")], http_pw, j("http.p12"))
    openssl("pkcs12", "-export", "-inkey", j("transport.key"), "-in", j("transport.crt"), "-certfile", j("transport_ca.crt"),
            "-name", "transport", "-out", j("transport.p12"), "-passout", "pass:" + transport_pw)


def password_hash(pw):
    # Hasher.PBKDF2 format: {PBKDF2}<iterations>$<salt>$<hash> (the real tool
    # writes a bcrypt hash; python3 alone has no bcrypt).
    salt = os.urandom(32)
    h = hashlib.pbkdf2_hmac("sha512", pw.encode(), salt, 10000, 32)
    return "{PBKDF2}10000$%s$%s" % (base64.b64encode(salt).decode(), base64.b64encode(h).decode())


def keystore_add(entries):
    tool = os.path.join(HOME, "bin", "elasticsearch-keystore")
    if not os.path.exists(os.path.join(CONF, "elasticsearch.keystore")):
        subprocess.run([tool, "create"], check=True)
    names = list(entries)
    subprocess.run([tool, "add", "-x", "-f", *names], input="\n".join(entries[n] for n in names) + "\n", text=True, check=True)


BLOCK = """
#----------------------- BEGIN SECURITY AUTO CONFIGURATION -----------------------
#
# The following settings, TLS certificates, and keys have been automatically
# generated to configure Elasticsearch security features on {date}
#
# --------------------------------------------------------------------------------

# Enable security features
xpack.security.enabled: true

xpack.security.enrollment.enabled: true

# Enable encryption for HTTP API client connections, such as Kibana, Logstash, and Agents
xpack.security.http.ssl:
  enabled: true
  keystore.path: certs/http.p12

# Enable encryption and mutual authentication between cluster nodes
xpack.security.transport.ssl:
  enabled: true
  verification_mode: certificate
  keystore.path: certs/transport.p12
  truststore.path: certs/transport.p12
# Create a new cluster with the current node only
# Additional nodes can still join the cluster later
cluster.initial_master_nodes: ["${{HOSTNAME}}"]

# Allow HTTP API connections from anywhere
# Connections are encrypted and require user authentication
http.host: 0.0.0.0

# Allow other nodes to join the cluster from anywhere
# Connections are encrypted and mutually authenticated
#transport.host: 0.0.0.0

#----------------------- END SECURITY AUTO CONFIGURATION -------------------------
"""

INFO = """--------------------------- Security autoconfiguration information ------------------------------

Authentication and authorization are enabled.
TLS for the transport and HTTP layers is enabled and configured.

The generated password for the elastic built-in superuser is : {password}

If this node should join an existing cluster, you can reconfigure this with
'/usr/share/elasticsearch/bin/elasticsearch-reconfigure-node --enrollment-token <token-here>'
after creating an enrollment token on your existing cluster.

You can complete the following actions at any time:

Reset the password of the elastic built-in superuser with
'/usr/share/elasticsearch/bin/elasticsearch-reset-password -u elastic'.

Generate an enrollment token for Kibana instances with
 '/usr/share/elasticsearch/bin/elasticsearch-create-enrollment-token -s kibana'.

Generate an enrollment token for Elasticsearch nodes with
'/usr/share/elasticsearch/bin/elasticsearch-create-enrollment-token -s node'.

-------------------------------------------------------------------------------------------------"""


def main():
    why = already_configured()
    if why:
        print("Skipping security auto configuration because %s" % why)
        return
    elastic_pw, http_pw, transport_pw = password(), password(), password()
    with tempfile.TemporaryDirectory() as tmp:
        make_certs(tmp, http_pw, transport_pw)
        os.makedirs(CERTS, 0o750)
        for src, dst in (("http_ca.crt", "http_ca.crt"), ("http.p12", "http.p12"), ("transport.p12", "transport.p12")):
            with open(os.path.join(tmp, src), "rb") as fh, open(os.path.join(CERTS, dst), "wb") as out:
                out.write(fh.read())
            os.chmod(os.path.join(CERTS, dst), 0o660)
    keystore_add({
        "xpack.security.http.ssl.keystore.secure_password": http_pw,
        "xpack.security.transport.ssl.keystore.secure_password": transport_pw,
        "xpack.security.transport.ssl.truststore.secure_password": transport_pw,
        "autoconfiguration.password_hash": password_hash(elastic_pw),
    })
    with open(YML, "a") as fh:
        fh.write(BLOCK.format(date=datetime.datetime.now().strftime("%d-%m-%Y %H:%M:%S")))
    print(INFO.format(password=elastic_pw))


if __name__ == "__main__":
    try:
        main()
    except subprocess.CalledProcessError as e:
        sys.exit("security auto-configuration failed: %s: %s" % (" ".join(e.cmd), (e.stderr or b"").decode(errors="replace")))
