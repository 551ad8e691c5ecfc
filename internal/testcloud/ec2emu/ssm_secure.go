package ec2emu

import (
	"strconv"
	"strings"
)

// getParameterVersion answers GetParameter for a name, an ARN, or either
// with a version selector (name:3), as Parameter Store does.
func (r *region) getParameterVersion(name string, decrypt bool) (any, *apiError) {
	n := name
	if strings.HasPrefix(n, "arn:") {
		prefix := "arn:aws:ssm:" + r.name + ":" + r.s.account + ":parameter"
		if !strings.HasPrefix(n, prefix) {
			return nil, errf("ValidationException", "Parameter ARN %s is not in this account and region (%s)", name, r.name)
		}
		n = strings.TrimPrefix(n, prefix)
		if r.params[n] == nil && r.params[strings.TrimPrefix(n, "/")] != nil {
			n = strings.TrimPrefix(n, "/")
		}
	}
	var version int64
	if i := strings.LastIndex(n, ":"); i > 0 {
		v, err := strconv.ParseInt(n[i+1:], 10, 64)
		if err != nil {
			return nil, errf("ValidationException", "Invalid label or version selector %q: a version is a number", n[i+1:])
		}
		n, version = n[:i], v
	}
	p := r.params[n]
	if p == nil {
		return nil, errf("ParameterNotFound", "Parameter %s not found.", name)
	}
	out := r.paramJSON(p, decrypt)
	if version > 0 && version != p.version {
		old, ok := p.history[version]
		if !ok {
			return nil, errf("ParameterVersionNotFound", "Systems Manager could not find version %d of %s. Verify the version and try again.", version, n)
		}
		q := *p
		q.value, q.version = old, version
		out = r.paramJSON(&q, decrypt)
	}
	if version > 0 {
		out.Selector = ":" + strconv.FormatInt(version, 10)
	}
	return map[string]any{"Parameter": out}, nil
}
