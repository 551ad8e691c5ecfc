package transport

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// hostKeyIndex answers known_hosts questions as knownhosts.New's callback
// does, without scanning every line per question: x/crypto checks a host
// against each line in turn, and the auditor asks twice per node, which at
// fleet scale made host key checks quadratic. Plain entries (host names
// and addresses, no marker) are indexed by address once per run; the rest
// (hashed names, wildcards, negations, @revoked and @cert-authority) stay
// with x/crypto, which scans only them.
type hostKeyIndex struct {
	file  string
	plain map[string][]knownhosts.KnownKey // by address as addrKey spells it
	rest  ssh.HostKeyCallback              // the other lines; nil when none
	full  ssh.HostKeyCallback              // every line, for certificates
}

// newHostKeyIndex reads file once.
func newHostKeyIndex(file string) (*hostKeyIndex, error) {
	full, err := knownhosts.New(file)
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	idx := &hostKeyIndex{file: file, plain: map[string][]knownhosts.KnownKey{}, full: full}
	var rest bytes.Buffer
	restLines := 0
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Bytes()
		if hosts, key, ok := plainLine(line); ok {
			for _, h := range hosts {
				idx.plain[h] = append(idx.plain[h], knownhosts.KnownKey{Key: key, Filename: file, Line: n})
			}
			rest.WriteByte('\n') // keep line numbers for x/crypto's errors
			continue
		}
		if t := bytes.TrimSpace(line); len(t) > 0 && t[0] != '#' {
			restLines++
		}
		rest.Write(line)
		rest.WriteByte('\n')
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if restLines > 0 {
		// knownhosts reads only files, and reads them whole in New: the
		// copy lives no longer than that.
		dir, err := os.MkdirTemp("", "esaudit-known-hosts-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
		p := filepath.Join(dir, "known_hosts")
		if err := os.WriteFile(p, rest.Bytes(), 0o600); err != nil {
			return nil, err
		}
		if idx.rest, err = knownhosts.New(p); err != nil {
			return nil, err
		}
	}
	return idx, nil
}

// plainLine parses a line without marker whose host patterns are all plain
// (no hash, wildcard or negation), returning the patterns as addrKey
// spells them.
func plainLine(line []byte) ([]string, ssh.PublicKey, bool) {
	t := bytes.TrimSpace(line)
	if len(t) == 0 || t[0] == '#' || t[0] == '@' || t[0] == '|' {
		return nil, nil, false
	}
	i := bytes.IndexAny(t, " \t")
	if i < 0 {
		return nil, nil, false
	}
	patterns := string(t[:i])
	if strings.ContainsAny(patterns, "*?!") {
		return nil, nil, false
	}
	// The key part as x/crypto parses it: type and base64, comment ignored.
	_, _, key, _, rest, err := ssh.ParseKnownHosts(t)
	if err != nil || key == nil || len(bytes.TrimSpace(rest)) > 0 {
		return nil, nil, false
	}
	var hosts []string
	for _, p := range strings.Split(patterns, ",") {
		if p == "" {
			continue
		}
		host, port, err := net.SplitHostPort(p)
		if err != nil {
			if p[0] == '[' {
				return nil, nil, false // x/crypto rejects the line
			}
			host, port = p, "22"
		}
		hosts = append(hosts, addrKey(host, port))
	}
	if len(hosts) == 0 {
		return nil, nil, false
	}
	return hosts, key, true
}

func addrKey(host, port string) string { return host + "\x00" + port }

// check is knownhosts.New(file)'s HostKeyCallback.
func (idx *hostKeyIndex) check(hostname string, remote net.Addr, key ssh.PublicKey) error {
	if _, ok := key.(*ssh.Certificate); ok {
		return idx.full(hostname, remote, key)
	}
	// The other lines first: @revoked wins over any match, as in x/crypto.
	var want []knownhosts.KnownKey
	if idx.rest != nil {
		err := idx.rest(hostname, remote, key)
		var ke *knownhosts.KeyError
		var re *knownhosts.RevokedError
		switch {
		case err == nil:
			return nil
		case errors.As(err, &re):
			re.Revoked.Filename = idx.file
			return re
		case errors.As(err, &ke):
			for _, k := range ke.Want {
				k.Filename = idx.file
				want = append(want, k)
			}
		default:
			return err
		}
	}
	// x/crypto checks the hostname if given, else the remote address.
	hp := hostname
	if hp == "" {
		hp = remote.String()
	}
	host, port, err := net.SplitHostPort(hp)
	if err != nil {
		return fmt.Errorf("knownhosts: SplitHostPort(%s): %v", hp, err)
	}
	if idx.rest == nil {
		// Without other lines nothing checked revocation; there is none.
		if _, _, err := net.SplitHostPort(remote.String()); err != nil {
			return fmt.Errorf("knownhosts: SplitHostPort(%s): %v", remote, err)
		}
	}
	blob := key.Marshal()
	for _, k := range idx.plain[addrKey(host, port)] {
		if bytes.Equal(k.Key.Marshal(), blob) {
			return nil
		}
		want = append(want, k)
	}
	// File order, as x/crypto reports them.
	sort.SliceStable(want, func(i, j int) bool { return want[i].Line < want[j].Line })
	return &knownhosts.KeyError{Want: want}
}
